"""Django admin for agents: providers, agents (with their tool bindings), tools, conversations
(with their messages) and runs (with their events).

Like the tenancy admin (:mod:`projects.admin`), it works across tenants and keeps the rules:
writes go through :mod:`agents.services`, and a row's relations come from its own project.

Secrets: a provider's ``api_key`` and a tool's ``headers`` appear in no form, column, filter or
lookup. A provider's key can be replaced (a password input that never renders a value; empty
keeps the stored key) or removed; the page says only whether one is stored. A tool's headers are
set through the API; here only their names are shown.

Conversations, messages, runs and events are written by the agents at work: they are read-only
here (deleting is allowed). Runs can be retried, through ``agents.runs.run_retry``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.db.models import BooleanField, Count, ExpressionWrapper, Model, Q
from django.forms.models import BaseInlineFormSet
from django.utils.translation import ngettext

from agents import services
from agents.models import Agent, Conversation, Message, Provider, Run, RunEvent, Tool, ToolBinding
from agents.tools import validate_tool_parameters, validate_tool_url
from config.admin import ReadOnlyAdmin, ReadOnlyInline, reject_duplicate_rows
from config.exceptions import DomainError
from projects.admin import ProjectScopedAddForm, ProjectScopedAdmin
from projects.models import Project, Team

# --- helpers ------------------------------------------------------------------------------


def _project_choice(model: type[Model]) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Project.objects.all(), widget=AutocompleteSelect(model._meta.get_field("project"), admin.site)
    )


def _adopt(obj: Model, saved: Model) -> None:
    """Make the admin's unsaved ``obj`` the row a service saved (for the log entry and redirect)."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


class UniqueNameForm(forms.ModelForm):
    """Names are unique per project; ``project`` is not a model-form field, so the form would not
    check the constraint itself. ``model_fields``: what the form hands to the service."""

    model_fields: tuple[str, ...] = ()

    def _project_id(self):
        return self.cleaned_data.get("project").pk if self.cleaned_data.get("project") else self.instance.project_id

    def clean(self):
        cleaned = super().clean()
        name, project_id = cleaned.get("name"), self._project_id()
        model = self._meta.model
        clash = model.objects.filter(project_id=project_id, name=name).exclude(pk=self.instance.pk)
        if name and project_id and clash.exists():
            self.add_error("name", f"This project already has a {model._meta.verbose_name} of that name.")
        return cleaned

    def _form_fields(self) -> dict[str, Any]:
        """The model fields this form edits, as a service takes them."""
        return {name: self.cleaned_data[name] for name in self.model_fields if name in self.cleaned_data}


class ProjectRowFilter(admin.SimpleListFilter):
    """Filter by a related row, listed as "name (project)" from one values() query: names repeat
    across projects, and loading the rows would decrypt what they hold."""

    related_model: type[Model]
    field: str

    def lookups(self, request, model_admin):
        rows = self.related_model.objects.order_by("project__name", "name").values_list("pk", "name", "project__name")
        return [(str(pk), f"{name} ({project})") for pk, name, project in rows]

    def queryset(self, request, queryset):
        return queryset.filter(**{f"{self.field}_id": self.value()}) if self.value() else queryset


class ProviderFilter(ProjectRowFilter):
    title = parameter_name = "provider"
    related_model, field = Provider, "provider"


class TeamFilter(ProjectRowFilter):
    title = parameter_name = "team"
    related_model, field = Team, "team"


class AgentFilter(ProjectRowFilter):
    title = parameter_name = "agent"
    related_model, field = Agent, "agent"


# --- providers ----------------------------------------------------------------------------

_PROVIDER_FIELDS = (
    "name",
    "kind",
    "base_url",
    "organization",
    "default_chat_model",
    "default_embedding_model",
    "timeout_seconds",
    "max_retries",
    "is_default",
)


class ProviderForm(UniqueNameForm):
    base_url = forms.URLField(
        max_length=500, required=False, assume_scheme="https", help_text=Provider._meta.get_field("base_url").help_text
    )
    new_api_key = forms.CharField(
        label="New API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )
    remove_api_key = forms.BooleanField(label="Remove the stored key", required=False)
    model_fields = _PROVIDER_FIELDS

    class Meta:
        model = Provider
        fields = _PROVIDER_FIELDS

    def clean_base_url(self) -> str:
        value = self.cleaned_data["base_url"]
        if value and not value.lower().startswith(("http://", "https://")):
            raise ValidationError("The base URL must start with http:// or https://.")
        return value

    def service_fields(self) -> dict[str, Any]:
        fields = self._form_fields()
        if self.cleaned_data.get("new_api_key"):
            fields["api_key"] = self.cleaned_data["new_api_key"]
        elif self.cleaned_data.get("remove_api_key"):
            fields["api_key"] = ""
        return fields


class ProviderAddForm(ProjectScopedAddForm, ProviderForm):
    project = _project_choice(Provider)
    remove_api_key = None

    class Meta(ProviderForm.Meta):
        pass


@admin.register(Provider)
class ProviderAdmin(ProjectScopedAdmin):
    secret_fields = ("api_key",)
    form = ProviderForm
    add_form = ProviderAddForm
    list_display = ("name", "project", "kind", "base_url", "default_chat_model", "is_default", "has_api_key")
    list_select_related = ("project",)
    list_filter = ("kind", "is_default", "created_at")
    search_fields = ("name", "base_url", "default_chat_model", "project__name")
    _main = ("project", "name", "kind", "base_url", "organization")
    _models = ("default_chat_model", "default_embedding_model", "timeout_seconds", "max_retries", "is_default")
    add_fieldsets = (
        (None, {"fields": _main}),
        ("Credentials", {"fields": ("new_api_key",)}),
        ("Models and limits", {"fields": _models}),
    )
    fieldsets = (
        (None, {"fields": _main}),
        ("Credentials", {"fields": ("has_api_key", "new_api_key", "remove_api_key")}),
        ("Models and limits", {"fields": _models}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("has_api_key", "created_at", "updated_at")

    def get_queryset(self, request):
        # Whether a key is stored, without loading (and decrypting) it: "" is stored as "".
        stored = ExpressionWrapper(~Q(api_key=""), output_field=BooleanField())
        return super().get_queryset(request).defer("api_key").annotate(key_stored=stored)

    @admin.display(description="API key stored", boolean=True, ordering="key_stored")
    def has_api_key(self, provider: Provider) -> bool:
        return provider.key_stored

    def save_model(self, request, obj: Provider, form: ProviderForm, change: bool) -> None:
        if change:
            services.provider_update(provider=obj, **form.service_fields())
        else:
            _adopt(obj, services.provider_create(project=obj.project, **form.service_fields()))


# --- agents -------------------------------------------------------------------------------


def _project_label(row) -> str:
    return f"{row.name} ({row.project.name})"


class AgentForm(UniqueNameForm):
    """Providers and teams are chosen among the agent's project's own."""

    model_fields = services.AGENT_FIELDS

    class Meta:
        model = Agent
        fields = services.AGENT_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].queryset = Provider.objects.filter(project_id=self.instance.project_id).defer("api_key")
        self.fields["team"].queryset = Team.objects.filter(project_id=self.instance.project_id)

    def clean_metadata(self):
        value = self.cleaned_data["metadata"]
        if not isinstance(value, dict):
            raise ValidationError("Metadata must be a JSON object.")
        return value


class AgentAddForm(ProjectScopedAddForm, AgentForm):
    """Before the project is chosen every provider and team is offered, labelled with its project;
    one of another project is refused."""

    project = _project_choice(Agent)

    class Meta(AgentForm.Meta):
        pass

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].queryset = Provider.objects.select_related("project").defer("api_key")
        self.fields["provider"].label_from_instance = _project_label
        self.fields["team"].queryset = Team.objects.select_related("project")
        self.fields["team"].label_from_instance = _project_label

    def clean(self):
        cleaned = super().clean()
        project = cleaned.get("project")
        for field in ("provider", "team"):
            row = cleaned.get(field)
            if project is not None and row is not None and row.project_id != project.pk:
                self.add_error(field, f"This {field} belongs to another project.")
        return cleaned


class ToolBindingInlineForm(forms.ModelForm):
    class Meta:
        model = ToolBinding
        fields = ("tool", "config")

    def clean_config(self):
        value = self.cleaned_data["config"]
        if not isinstance(value, dict):
            raise ValidationError("The config must be a JSON object.")
        return value


class ToolBindingFormSet(BaseInlineFormSet):
    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        form.fields["tool"].queryset = Tool.objects.filter(project_id=self.instance.project_id).defer("headers")

    def clean(self) -> None:
        super().clean()
        reject_duplicate_rows(
            self.forms,
            lambda row: row["tool"].pk if row.get("tool") else None,
            "A tool can be bound to an agent only once.",
        )


class ToolBindingInline(admin.TabularInline):
    model = ToolBinding
    fk_name = "agent"
    form = ToolBindingInlineForm
    formset = ToolBindingFormSet
    fields = ("tool", "config")
    extra = 0
    verbose_name = "tool"
    verbose_name_plural = "Tools"


@admin.register(Agent)
class AgentAdmin(ProjectScopedAdmin):
    form = AgentForm
    add_form = AgentAddForm
    list_display = ("name", "project", "provider", "model", "team", "is_active", "created_at")
    list_select_related = ("project", "provider", "team")
    list_filter = ("is_active", ProviderFilter, TeamFilter, "created_at")
    search_fields = ("name", "description", "project__name")
    date_hierarchy = "created_at"
    add_fieldsets = (
        (None, {"fields": ("project", "name", "description", "instructions", "is_active")}),
        ("Model", {"fields": ("provider", "model", "temperature", "max_tokens", "max_tool_rounds", "memory_window")}),
        ("More", {"fields": ("team", "metadata")}),
    )
    fieldsets = (
        *add_fieldsets,
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("created_at", "updated_at")
    inlines = (ToolBindingInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("provider__api_key")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()  # tools are chosen once the project is known

    def save_model(self, request, obj: Agent, form: AgentForm, change: bool) -> None:
        if change:
            services.agent_update(agent=obj, **form._form_fields())
        else:
            _adopt(obj, services.agent_create(project=obj.project, **form._form_fields()))

    def save_formset(self, request, form, formset, change: bool) -> None:
        if formset.model is not ToolBinding:
            return super().save_formset(request, form, formset, change)
        agent: Agent = form.instance
        bindings = formset.save(commit=False)
        for binding in formset.deleted_objects:
            binding.delete()
        for binding in bindings:
            if binding._state.adding:
                saved = services.tool_binding_create(
                    project=agent.project, agent=agent, tool=binding.tool, config=binding.config
                )
                _adopt(binding, saved)
            else:
                services.tool_binding_update(binding=binding, tool=binding.tool, config=binding.config)
        return None


# --- tools --------------------------------------------------------------------------------

_TOOL_FIELDS = ("name", "description", "method", "url_template", "parameters", "timeout_seconds")


class ToolForm(UniqueNameForm):
    """The URL and parameters pass the same checks as through the API."""

    model_fields = _TOOL_FIELDS

    class Meta:
        model = Tool
        fields = _TOOL_FIELDS

    def clean(self):
        cleaned = super().clean()
        if "parameters" in cleaned and "url_template" in cleaned:
            try:
                validate_tool_parameters(cleaned["parameters"])
                validate_tool_url(cleaned["url_template"], cleaned["parameters"])
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned


class ToolAddForm(ProjectScopedAddForm, ToolForm):
    project = _project_choice(Tool)

    class Meta(ToolForm.Meta):
        pass


@admin.register(Tool)
class ToolAdmin(ProjectScopedAdmin):
    secret_fields = ("headers",)
    form = ToolForm
    add_form = ToolAddForm
    list_display = ("name", "project", "method", "url_template", "timeout_seconds", "created_at")
    list_select_related = ("project",)
    list_filter = ("method", "created_at")
    search_fields = ("name", "description", "url_template", "project__name")
    add_fieldsets = ((None, {"fields": ("project", *_TOOL_FIELDS)}),)
    fieldsets = (
        (None, {"fields": ("project", *_TOOL_FIELDS)}),
        ("Headers", {"fields": ("header_names",)}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("header_names", "created_at", "updated_at")

    def get_queryset(self, request):
        # Headers are decrypted only on the change page, for their names.
        return super().get_queryset(request).defer("headers")

    @admin.display(description="Header names")
    def header_names(self, tool: Tool) -> str:
        names = sorted(tool.headers or {})
        return ", ".join(names) if names else "(none; headers are set through the API)"

    def save_model(self, request, obj: Tool, form: ToolForm, change: bool) -> None:
        if change:
            services.tool_update(tool=obj, **form._form_fields())
        else:
            _adopt(obj, services.tool_create(project=obj.project, **form._form_fields()))


# --- conversations ------------------------------------------------------------------------


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ("created_at", "role", "name", "content", "tool_calls", "tool_call_id")
    readonly_fields = fields
    ordering = ("created_at", "id")


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("label", "agent", "project", "message_count", "created_at")
    list_select_related = ("project", "agent")
    list_filter = (AgentFilter, "created_at")
    search_fields = ("title", "agent__name", "project__name")
    date_hierarchy = "created_at"
    fields = ("project", "agent", "title", "metadata", "created_at", "updated_at")
    inlines = (MessageInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.display(description="Conversation", ordering="title")
    def label(self, conversation: Conversation) -> str:
        return conversation.title or f"(untitled) {conversation.pk}"

    @admin.display(description="Messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count


# --- runs ---------------------------------------------------------------------------------


class RunEventInline(ReadOnlyInline):
    model = RunEvent
    fields = ("seq", "type", "data", "created_at")
    readonly_fields = fields
    ordering = ("seq",)


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "agent", "project", "status", "attempts", "created_at", "started_at", "finished_at")
    list_select_related = ("project", "agent")
    list_filter = ("status", AgentFilter, "created_at")
    search_fields = ("agent__name", "project__name", "request_id")
    date_hierarchy = "created_at"
    fieldsets = (
        (None, {"fields": ("project", "agent", "conversation", "status", "attempts", "cancel_requested")}),
        ("Input and result", {"fields": ("input", "output", "error", "usage")}),
        ("Timing", {"fields": ("created_at", "started_at", "heartbeat_at", "finished_at")}),
        ("Caller", {"fields": ("api_key_id", "user_id", "request_id")}),
    )
    inlines = (RunEventInline,)
    actions = ("retry_selected",)

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm(f"{Run._meta.app_label}.change_{Run._meta.model_name}")

    @admin.action(description="Retry selected runs", permissions=["retry"])
    def retry_selected(self, request, queryset) -> None:
        """Queue each selected run again through ``agents.runs.run_retry``, which decides what can
        be retried; a run it refuses is reported, the others go ahead."""
        try:
            from agents.runs import run_retry
        except ImportError:
            self.message_user(request, "Runs cannot be retried in this version.", messages.ERROR)
            return
        retried, refused = 0, []
        for run in queryset.select_related("agent"):
            try:
                run_retry(run=run)
            except DomainError as exc:
                refused.append(f"{run.pk}: {exc.message}")
                continue
            self.log_change(request, run, "Retried.")
            retried += 1
        if retried:
            self.message_user(
                request, ngettext("Retried %d run.", "Retried %d runs.", retried) % retried, messages.SUCCESS
            )
        if refused:
            self.message_user(request, "Not retried: " + "; ".join(refused), messages.WARNING)
