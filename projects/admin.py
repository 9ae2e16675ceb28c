"""Django admin for tenancy: projects, members and invitations, teams and API keys.

The admin is staff-only and works across tenants; it opts out of tenant scoping by being the
admin. It does not opt out of the rules: every write that has a service goes through it
(``project_create``, ``member_invite``, ``member_change_role``, ``member_remove``,
``apikey_create``, ``apikey_revoke``, ``apikey_delete``), with staff acting as an owner.

Secrets: an API key shows only its ``prefix``. ``APIKey.digest`` and
``Membership.invitation_digest`` appear in no form, column, filter or URL lookup. A new key's full
value is rendered once, in the response to the request that created it (see
:class:`APIKeyAdmin`), and is stored nowhere: not in the database, the session or a message.

``project`` is not editable on tenant-owned models (the server sets it). Here staff are the
server: the add forms declare their own ``project`` field, chosen once; after that it is read-only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Now
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import ngettext

from accounts.models import User
from config.admin import ReadOnlyInline, reject_duplicate_rows
from projects import services
from projects.authentication import forget_key
from projects.models import APIKey, Membership, Project, Role, Team

KEY_CREATED_TEMPLATE = "admin/projects/apikey/key_created.html"
KEYS_FOR_PROJECTS_TEMPLATE = "admin/projects/apikey/create_for_projects.html"
# Staff act with the widest role; the services still enforce what no role may do (drop the last owner).
STAFF_ROLE = Role.OWNER


# --- helpers ------------------------------------------------------------------------------


def _count_per_project(model: type[models.Model], condition: Q) -> Coalesce:
    """Rows of ``model`` per project, as a correlated subquery: one query for the whole changelist.
    (Project has no reverse relations to count through: tenant FKs use ``related_name="+"``.)"""
    rows = (
        model.objects.filter(condition, project=OuterRef("pk"))
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def _adopt(obj: models.Model, saved: models.Model) -> None:
    """Make the admin's unsaved ``obj`` the row a service saved, so the log entry, messages and
    redirect that follow name the real row."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def _project_field(model: type[models.Model]) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Project.objects.all(), widget=AutocompleteSelect(model._meta.get_field("project"), admin.site)
    )


def _scopes_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=APIKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[APIKey.Scope.READ, APIKey.Scope.WRITE],
        help_text="A key acts as a viewer (read), member (write) or admin (admin); never as an owner.",
    )


def _future(value):
    if value is not None and value <= timezone.now():
        raise ValidationError("The expiry must be in the future.")
    return value


def render_created_keys(request, admin_site: admin.AdminSite, created: Sequence[services.CreatedKey]):
    """The one page that shows new keys in full: the response to the POST that made them.

    Not a redirect plus a message: messages live in the session or a cookie, which would hold the
    key in the clear until read. Reloading this page re-submits the form (the browser asks first)
    and would make another key, never show this one again.
    """
    context = {
        **admin_site.each_context(request),
        "title": ngettext("Copy your new API key", "Copy your new API keys", len(created)),
        "opts": APIKey._meta,
        "created": created,
    }
    response = TemplateResponse(request, KEY_CREATED_TEMPLATE, context)
    add_never_cache_headers(response)
    return response


class SecretLookupsForbidden:
    """No changelist URL may filter on a digest (``?digest__startswith=…`` would probe it)."""

    secret_fields: tuple[str, ...] = ()

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if lookup.split("__")[0] in self.secret_fields:
            return False
        return super().lookup_allowed(lookup, value, request)


class ProjectScopedAdmin(SecretLookupsForbidden, admin.ModelAdmin):
    """Admin of a ``ProjectScopedModel``: ``add_form`` and ``add_fieldsets`` (which name
    ``project``) on add; ``form`` and ``fieldsets`` with ``project`` read-only on change."""

    add_form: type[forms.ModelForm]
    add_fieldsets: tuple

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is None:  # what the add form asks for is, by definition, not read-only
            return tuple(name for name in fields if name not in flatten_fieldsets(self.add_fieldsets))
        return ("project", *fields)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
            # The form declares ``project``; naming it to the model-form factory would fail (not editable).
            kwargs["fields"] = [name for name in flatten_fieldsets(self.add_fieldsets) if name != "project"]
        return super().get_form(request, obj, change=change, **kwargs)


class ProjectScopedAddForm(forms.ModelForm):
    project: forms.ModelChoiceField  # subclasses declare it with _project_field(their model)

    def _post_clean(self) -> None:
        if self.cleaned_data.get("project") is not None:
            self.instance.project = self.cleaned_data["project"]
        super()._post_clean()


# --- projects -----------------------------------------------------------------------------


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ("name", "description", "created_by")
        labels = {"created_by": "Owner"}
        help_texts = {"created_by": "Becomes the project's owner, as if they had created it themselves."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "created_by" in self.fields:  # only on add: afterwards it is history, read-only
            self.fields["created_by"].required = True


class KeysForProjectsForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="The same name for each project's key.")
    environment = forms.ChoiceField(choices=APIKey.Environment.choices, initial=APIKey.Environment.LIVE)
    scopes = _scopes_field()
    expires_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Empty: the keys never expire.",
    )

    def clean_scopes(self) -> list[str]:
        return sorted(set(self.cleaned_data["scopes"]))

    def clean_expires_at(self):
        return _future(self.cleaned_data["expires_at"])


class ProjectMembershipInline(ReadOnlyInline):
    """Each row links to the Membership admin, where role changes go through the services."""

    model = Membership
    fk_name = "project"
    fields = ("email", "user", "role", "status", "joined_at")
    readonly_fields = fields
    show_change_link = True
    verbose_name_plural = "Members and invitations"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


def _team_name_taken(*, project_id, name: str, exclude_pk=None) -> bool:
    return Team.objects.filter(project_id=project_id, name__iexact=name).exclude(pk=exclude_pk).exists()


TEAM_NAME_TAKEN = "This project already has a team of that name."


class TeamInlineForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ("name", "description")

    def clean_name(self) -> str:
        # The unique (project, lower(name)) constraint is not checked by the form: ``project`` is not a form field.
        name = self.cleaned_data["name"]
        if _team_name_taken(project_id=self.instance.project_id, name=name, exclude_pk=self.instance.pk):
            raise ValidationError(TEAM_NAME_TAKEN)
        return name


class TeamInlineFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        reject_duplicate_rows(
            self.forms, lambda row: row["name"].lower() if row.get("name") else None, "Two teams cannot share a name."
        )


class ProjectTeamInline(admin.TabularInline):
    model = Team
    fk_name = "project"
    form = TeamInlineForm
    formset = TeamInlineFormSet
    fields = ("name", "description")
    extra = 0
    show_change_link = True


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectForm
    list_display = ("name", "created_by", "member_count", "key_count", "created_at")
    list_select_related = ("created_by",)
    list_filter = ("created_at",)
    date_hierarchy = "created_at"
    search_fields = ("name", "description", "created_by__email")
    autocomplete_fields = ("created_by",)
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = (ProjectMembershipInline, ProjectTeamInline)
    actions = ("create_key_for_selected",)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": ("name", "description", "created_by")}),)
        return (
            (None, {"fields": ("name", "description")}),
            ("History", {"fields": ("id", "created_by", "created_at", "updated_at")}),
        )

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else (*self.readonly_fields, "created_by")

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    def get_queryset(self, request):
        live_key = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=Now()))
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=_count_per_project(Membership, Q(status=Membership.Status.ACTIVE)),
                key_count=_count_per_project(APIKey, live_key),
            )
        )

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, project: Project) -> int:
        return project.member_count

    @admin.display(description="Active keys", ordering="key_count")
    def key_count(self, project: Project) -> int:
        return project.key_count

    def save_model(self, request, obj: Project, form, change: bool) -> None:
        if change:
            services.project_update(project=obj, name=obj.name, description=obj.description)
        else:
            project = services.project_create(creator=obj.created_by, name=obj.name, description=obj.description)
            _adopt(obj, project)

    def has_add_key_permission(self, request) -> bool:
        return request.user.has_perm(f"{APIKey._meta.app_label}.add_{APIKey._meta.model_name}")

    @admin.action(description="Create an API key for each selected project", permissions=["add_key"])
    def create_key_for_selected(self, request, queryset):
        """Ask for the key's name, scopes and expiry, then show every new key once."""
        form = KeysForProjectsForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            with transaction.atomic():
                created = [
                    services.apikey_create(project=project, created_by=request.user, **form.cleaned_data)
                    for project in queryset
                ]
                for item in created:
                    self.log_addition(request, item.api_key, [{"added": {}}])
            return render_created_keys(request, self.admin_site, created)
        context = {
            **self.admin_site.each_context(request),
            "title": "Create API keys",
            "opts": self.opts,
            "form": form,
            "projects": queryset,
            "action_name": "create_key_for_selected",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, KEYS_FOR_PROJECTS_TEMPLATE, context)


# --- members ------------------------------------------------------------------------------


class MembershipAddForm(ProjectScopedAddForm):
    """Adds through ``member_invite``: an existing user joins at once, a new address is invited."""

    project = _project_field(Membership)

    class Meta:
        model = Membership
        fields = ("email", "role")

    def clean(self):
        cleaned = super().clean()
        project, email = cleaned.get("project"), cleaned.get("email")
        if project is not None and email:
            email = User.objects.normalize_email(email)
            taken = Membership.objects.filter(Q(email__iexact=email) | Q(user__email=email), project=project)
            if taken.exists():
                self.add_error("email", "This address is already a member of, or invited to, the project.")
        return cleaned


class MembershipChangeForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("role",)

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        current = self.instance
        demoted = current.role == Role.OWNER and role != Role.OWNER and current.status == Membership.Status.ACTIVE
        if demoted and _active_owners(current.project_id).count() <= 1:
            raise ValidationError("This is the project's last owner; make someone else owner first.")
        return role


def _active_owners(project_id):
    return Membership.objects.filter(project_id=project_id, role=Role.OWNER, status=Membership.Status.ACTIVE)


@admin.register(Membership)
class MembershipAdmin(ProjectScopedAdmin):
    secret_fields = ("invitation_digest",)
    form = MembershipChangeForm
    add_form = MembershipAddForm
    list_display = ("email", "project", "user", "role", "status", "joined_at")
    list_select_related = ("project", "user")
    list_filter = ("role", "status", "joined_at")
    search_fields = ("email", "user__full_name", "project__name")
    add_fieldsets = ((None, {"fields": ("project", "email", "role")}),)
    fieldsets = (
        (None, {"fields": ("project", "email", "user", "role", "status")}),
        ("History", {"fields": ("invited_by", "invitation_expires_at", "joined_at", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "email",
        "user",
        "status",
        "invited_by",
        "invitation_expires_at",
        "joined_at",
        "created_at",
        "updated_at",
    )

    def save_model(self, request, obj: Membership, form, change: bool) -> None:
        if not change:
            membership = services.member_invite(
                project=obj.project, email=obj.email, role=obj.role, invited_by=request.user, actor_role=STAFF_ROLE
            )
        elif "role" in form.changed_data:
            # The service decides from the stored role; ``obj`` already carries the new one.
            stored = Membership.objects.get(pk=obj.pk)
            membership = services.member_change_role(membership=stored, role=obj.role, actor_role=STAFF_ROLE)
        else:
            return
        _adopt(obj, membership)

    def get_deleted_objects(self, objs, request):
        """Refuse (as Django does for protected rows) to delete every active owner of a project."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        leaving = Counter(m.project_id for m in objs if m.role == Role.OWNER and m.status == Membership.Status.ACTIVE)
        for project in Project.objects.filter(pk__in=leaving):
            if leaving[project.pk] >= _active_owners(project.pk).count():
                protected = [*protected, f"Project “{project}” would be left without an owner"]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj: Membership) -> None:
        services.member_remove(membership=obj, actor_role=STAFF_ROLE)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset:
            services.member_remove(membership=membership, actor_role=STAFF_ROLE)


# --- teams --------------------------------------------------------------------------------


class TeamAddForm(ProjectScopedAddForm):
    project = _project_field(Team)

    class Meta:
        model = Team
        fields = ("name", "description")

    def clean(self):
        cleaned = super().clean()
        project, name = cleaned.get("project"), cleaned.get("name")
        if project is not None and name and _team_name_taken(project_id=project.pk, name=name):
            self.add_error("name", TEAM_NAME_TAKEN)
        return cleaned


class TeamForm(TeamInlineForm):
    """Members are chosen among the team's own project's memberships only."""

    class Meta:
        model = Team
        fields = ("name", "description", "members")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        members = self.fields["members"]
        members.queryset = Membership.objects.filter(project_id=self.instance.project_id)
        members.label_from_instance = lambda m: f"{m.email} ({m.get_role_display()}, {m.get_status_display()})"


@admin.register(Team)
class TeamAdmin(ProjectScopedAdmin):
    """Members are picked on the change page, among the team's project's memberships; the add page
    asks only for the project and name (until the project is chosen there is nobody to pick)."""

    form = TeamForm
    add_form = TeamAddForm
    list_display = ("name", "project", "member_count", "created_at")
    list_select_related = ("project",)
    list_filter = ("created_at",)
    search_fields = ("name", "description", "project__name")
    filter_horizontal = ("members",)
    add_fieldsets = ((None, {"fields": ("project", "name", "description")}),)
    fieldsets = (
        (None, {"fields": ("project", "name", "description", "members")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members", distinct=True))

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, team: Team) -> int:
        return team.member_count


# --- API keys -----------------------------------------------------------------------------


class APIKeyAddForm(ProjectScopedAddForm):
    project = _project_field(APIKey)
    scopes = _scopes_field()

    class Meta:
        model = APIKey
        fields = ("name", "environment", "scopes", "expires_at")
        help_texts = {"expires_at": "Empty: the key never expires."}

    def clean_scopes(self) -> list[str]:
        return sorted(set(self.cleaned_data["scopes"]))

    def clean_expires_at(self):
        return _future(self.cleaned_data["expires_at"])


class APIKeyChangeForm(forms.ModelForm):
    """What the API lets an admin change, too: the name, scopes and expiry."""

    scopes = _scopes_field()

    class Meta:
        model = APIKey
        fields = ("name", "scopes", "expires_at")

    def clean_scopes(self) -> list[str]:
        return sorted(set(self.cleaned_data["scopes"]))

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        return _future(value) if "expires_at" in self.changed_data else value


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        expired = Q(expires_at__lte=Now())
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).exclude(expired)
        if self.value() == "expired":
            return queryset.filter(expired, revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class KeyScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return APIKey.Scope.choices

    def queryset(self, request, queryset):
        if self.value() in APIKey.Scope.values:
            return queryset.filter(scopes__contains=[self.value()])
        return queryset


@admin.register(APIKey)
class APIKeyAdmin(ProjectScopedAdmin):
    """API keys by prefix; the digest is never shown.

    Adding a key uses the normal add form, whose save calls ``apikey_create``; the response to that
    POST is a page that shows the full key, once (:func:`render_created_keys`), instead of the usual
    redirect. Changing a key edits what the API lets an admin edit (name, scopes, expiry); revoking
    is the "Revoke selected API keys" action, through ``apikey_revoke``.
    """

    secret_fields = ("digest",)
    form = APIKeyChangeForm
    add_form = APIKeyAddForm
    list_display = (
        "name",
        "project",
        "prefix",
        "scope_list",
        "environment",
        "is_active",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "created_at",
    )
    list_select_related = ("project",)
    list_filter = (KeyStateFilter, "environment", KeyScopeFilter, "created_at", "last_used_at")
    search_fields = ("name", "prefix", "project__name")
    date_hierarchy = "created_at"
    add_fieldsets = ((None, {"fields": ("project", "name", "environment", "scopes", "expires_at")}),)
    fieldsets = (
        (None, {"fields": ("project", "name", "prefix", "environment", "scopes", "expires_at")}),
        ("State", {"fields": ("is_active", "revoked_at", "last_used_at")}),
        ("History", {"fields": ("created_by", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "prefix",
        "environment",
        "is_active",
        "revoked_at",
        "last_used_at",
        "created_by",
        "created_at",
        "updated_at",
    )
    actions = ("revoke_selected",)

    @admin.display(description="Scopes")
    def scope_list(self, api_key: APIKey) -> str:
        return ", ".join(api_key.scopes)

    @admin.display(description="Active", boolean=True)
    def is_active(self, api_key: APIKey) -> bool:
        return not api_key.is_revoked and not api_key.is_expired

    def save_model(self, request, obj: APIKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            forget_key(obj.digest)  # new scopes or expiry apply at once in this process
            return
        created = services.apikey_create(
            project=obj.project,
            name=obj.name,
            scopes=obj.scopes,
            environment=obj.environment,
            expires_at=obj.expires_at,
            created_by=request.user,
        )
        _adopt(obj, created.api_key)
        obj._created = created  # read once by response_add, gone with this request

    def response_add(self, request, obj: APIKey, post_url_continue=None):
        created = getattr(obj, "_created", None)
        if created is None:
            return super().response_add(request, obj, post_url_continue)
        return render_created_keys(request, self.admin_site, [created])

    def delete_model(self, request, obj: APIKey) -> None:
        services.apikey_delete(api_key=obj)

    def delete_queryset(self, request, queryset) -> None:
        for api_key in queryset:
            services.apikey_delete(api_key=api_key)

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.apikey_revoke(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        self.message_user(
            request, ngettext("Revoked %d API key.", "Revoked %d API keys.", revoked) % revoked, messages.SUCCESS
        )
