"""CRUD for providers, agents, tools and tool bindings. Writes go through :mod:`agents.services`."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_view

from agents import services
from agents.filters import AgentFilter, ProviderFilter, ToolBindingFilter, ToolFilter
from agents.models import Agent, Provider, Tool, ToolBinding
from agents.serializers import (
    AgentSerializer,
    ProviderSerializer,
    ToolBindingSerializer,
    ToolBindingUpdateSerializer,
    ToolSerializer,
)
from knowledge.models import Collection
from projects.models import Role
from projects.tenancy import ProjectScopedViewSet

_NO_PUT = ["get", "post", "patch", "delete", "head", "options"]


@extend_schema_view(
    list=extend_schema(summary="The project's model providers"),
    create=extend_schema(
        summary="Add a provider (admins)",
        description="`api_key` is write-only: stored encrypted, never returned (`has_api_key` says whether one "
        "is stored). `is_default: true` makes this the provider of agents that name none, and unsets the "
        "previous default.",
    ),
    partial_update=extend_schema(summary="Change a provider (admins); omit `api_key` to keep the stored one"),
    destroy=extend_schema(summary="Delete a provider (admins); its agents fall back to the default provider"),
)
class ProviderViewSet(ProjectScopedViewSet):
    """Providers hold credentials: admins write, everyone in the project reads (without the key)."""

    queryset = Provider.objects.all()
    serializer_class = ProviderSerializer
    filterset_class = ProviderFilter
    search_fields = ["name", "base_url", "default_chat_model"]
    ordering_fields = ["name", "kind", "created_at"]
    http_method_names = _NO_PUT
    write_role = Role.ADMIN

    def perform_create(self, serializer) -> None:
        serializer.instance = services.provider_create(project=self.request.project, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.provider_update(provider=serializer.instance, **serializer.validated_data)


@extend_schema_view(
    list=extend_schema(summary="The project's agents"),
    create=extend_schema(
        summary="Create an agent",
        description="Only `name` is required. With no `provider` the agent uses the project's default provider "
        "(else the deployment's: the local model on the embedded default); with no `model`, that provider's "
        "default chat model. `effective_provider` and `effective_model` in the response say which.",
    ),
    destroy=extend_schema(summary="Delete an agent with its conversations, runs and tool bindings"),
)
class AgentViewSet(ProjectScopedViewSet):
    queryset = (
        Agent.objects.select_related("provider")
        .defer("provider__api_key")  # not needed here: never decrypt credentials to list agents
        .prefetch_related(
            Prefetch("bindings", queryset=ToolBinding.objects.only("id", "agent_id", "tool_id")),
            Prefetch("collections", queryset=Collection.objects.only("id")),
        )
    )
    serializer_class = AgentSerializer
    filterset_class = AgentFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]
    http_method_names = _NO_PUT

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        project = getattr(self.request, "project", None)
        if project is not None and self.action != "destroy":
            # One query per request, not per agent: the provider of agents that name none.
            defaults = Provider.objects.filter(project=project, is_default=True)
            context["default_provider"] = defaults.only("id", "kind", "default_chat_model").first()
        return context

    def perform_create(self, serializer) -> None:
        serializer.instance = services.agent_create(project=self.request.project, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.agent_update(agent=serializer.instance, **serializer.validated_data)


@extend_schema_view(
    list=extend_schema(summary="The project's HTTP tools"),
    create=extend_schema(
        summary="Create an HTTP tool",
        description="The model's arguments fill the `{placeholders}` of `url_template` (each must be declared in "
        "`parameters.properties`); the others go in the query string (GET, DELETE) or a JSON body. `headers` are "
        "write-only and stored encrypted; responses list `header_names`. Private, loopback and link-local "
        "targets are refused unless the deployment allows them.",
    ),
)
class ToolViewSet(ProjectScopedViewSet):
    queryset = Tool.objects.all()
    serializer_class = ToolSerializer
    filterset_class = ToolFilter
    search_fields = ["name", "description", "url_template"]
    ordering_fields = ["name", "created_at", "updated_at"]
    http_method_names = _NO_PUT

    def perform_create(self, serializer) -> None:
        serializer.instance = services.tool_create(project=self.request.project, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.tool_update(tool=serializer.instance, **serializer.validated_data)


@extend_schema_view(
    list=extend_schema(summary="Which agent may use which tool"),
    create=extend_schema(summary="Let an agent use a tool"),
    partial_update=extend_schema(
        summary="Change a binding's fixed arguments",
        request=ToolBindingUpdateSerializer,
        responses={200: ToolBindingSerializer},
    ),
    destroy=extend_schema(summary="Take a tool away from an agent"),
)
class ToolBindingViewSet(ProjectScopedViewSet):
    queryset = ToolBinding.objects.all()
    serializer_class = ToolBindingSerializer
    filterset_class = ToolBindingFilter
    ordering_fields = ["created_at"]
    http_method_names = _NO_PUT

    def get_serializer_class(self):
        return ToolBindingUpdateSerializer if self.action == "partial_update" else ToolBindingSerializer

    def perform_create(self, serializer) -> None:
        serializer.instance = services.tool_binding_create(project=self.request.project, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.tool_binding_update(binding=serializer.instance, **serializer.validated_data)
