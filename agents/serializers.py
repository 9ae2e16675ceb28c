"""Shapes of providers, agents, tools and tool bindings.

Secrets are write-only: a provider's ``api_key`` and a tool's ``headers`` are accepted, stored
encrypted and never returned; responses say ``has_api_key`` and ``header_names`` instead.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from agents.models import Agent, Provider, Tool, ToolBinding
from agents.services import AGENT_FIELDS
from agents.tools import validate_tool_parameters, validate_tool_url
from config.serializers import StrictModelSerializer
from knowledge.models import Collection
from projects.models import Team
from projects.tenancy import ProjectScopedPrimaryKeyRelatedField

# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Set by the HTTP client from the request itself; a tool may not override them.
_RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
MAX_HEADERS = 30


def _scoped(queryset, what: str, **kwargs) -> ProjectScopedPrimaryKeyRelatedField:
    """A relation to a row of the request's project. Another project's id reads exactly like an
    id that does not exist, so ids reveal nothing."""
    return ProjectScopedPrimaryKeyRelatedField(
        queryset=queryset,
        pk_field=serializers.UUIDField(),
        error_messages={
            "does_not_exist": f'No {what} "{{pk_value}}" in this project (another project\'s {what} cannot be used).',
        },
        **kwargs,
    )


class UniqueNameMixin:
    """``name`` is unique per project: say so as a field error, before the constraint would."""

    unique_name_message = "This name is already taken in the project."

    def validate_name(self, value: str) -> str:
        model = self.Meta.model
        clash = model.objects.filter(project=self.context["request"].project, name=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(self.unique_name_message)
        return value


def _json_object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"{what} must be a JSON object.")
    return value


# --- providers ----------------------------------------------------------------------------


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "An OpenAI-compatible provider",
            value={
                "name": "OpenAI",
                "kind": "openai",
                "api_key": "sk-...",
                "default_chat_model": "gpt-4o-mini",
                "default_embedding_model": "text-embedding-3-small",
                "is_default": True,
            },
            request_only=True,
        ),
        OpenApiExample(
            "A self-hosted endpoint",
            value={"name": "vLLM", "kind": "openai", "base_url": "https://llm.internal.example/v1"},
            request_only=True,
        ),
    ]
)
class ProviderSerializer(UniqueNameMixin, StrictModelSerializer):
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=4096,
        style={"input_type": "password"},
        help_text="Write-only: stored encrypted, never returned. Omit it to keep the stored key; "
        "an empty string removes it.",
    )
    has_api_key = serializers.SerializerMethodField(help_text="Whether a key is stored (the key is never shown).")
    unique_name_message = "A provider with this name already exists in the project."

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "api_key",
            "has_api_key",
            "organization",
            "default_chat_model",
            "default_embedding_model",
            "timeout_seconds",
            "max_retries",
            "is_default",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "has_api_key", "created_at", "updated_at"]

    def get_has_api_key(self, provider: Provider) -> bool:
        return bool(provider.api_key)

    def validate_base_url(self, value: str) -> str:
        if value and not value.lower().startswith(("http://", "https://")):
            raise serializers.ValidationError("The base URL must start with http:// or https://.")
        return value


# --- agents -------------------------------------------------------------------------------


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "The least an agent needs",
            value={"name": "Support", "instructions": "You answer questions about Acme's products. Be brief."},
            request_only=True,
        ),
        OpenApiExample(
            "A fully configured agent",
            value={
                "name": "Billing",
                "description": "Answers billing questions",
                "instructions": "You help customers with invoices and refunds.",
                "provider": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "model": "gpt-4o",
                "temperature": 0.2,
                "max_tokens": 800,
                "is_active": True,
                "metadata": {"locale": "en"},
            },
            request_only=True,
        ),
    ]
)
class AgentSerializer(UniqueNameMixin, StrictModelSerializer):
    provider = _scoped(
        Provider.objects.all(),
        "provider",
        allow_null=True,
        required=False,
        help_text="Empty: the project's default provider, else the deployment's.",
    )
    team = _scoped(Team.objects.all(), "team", allow_null=True, required=False)
    collections = _scoped(
        Collection.objects.all(),
        "collection",
        many=True,
        required=False,
        help_text="Knowledge collections the agent answers from (and cites).",
    )
    metadata = serializers.JSONField(required=False, help_text="Free-form JSON object.")
    tools = serializers.SerializerMethodField(help_text="Ids of the tools bound to the agent (see /tool-bindings/).")
    effective_provider = serializers.SerializerMethodField(
        help_text="The provider the agent's calls go to: its own, else the project's default; "
        "null means the deployment's default."
    )
    effective_model = serializers.SerializerMethodField(
        help_text="The model the agent's calls use: its own `model`, else the provider's default chat model; "
        "null when an OpenAI-compatible provider names no default (set `model`)."
    )
    unique_name_message = "An agent with this name already exists in the project."

    class Meta:
        model = Agent
        fields = [
            "id",
            *AGENT_FIELDS,
            "collections",
            "tools",
            "effective_provider",
            "effective_model",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "tools", "effective_provider", "effective_model", "created_at", "updated_at"]

    def validate_metadata(self, value: Any) -> dict:
        return _json_object(value, "metadata")

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_tools(self, agent: Agent) -> list[str]:
        return [str(binding.tool_id) for binding in agent.bindings.all()]

    def _provider(self, agent: Agent) -> Provider | None:
        if agent.provider_id is not None:
            return agent.provider
        return self.context.get("default_provider")

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_effective_provider(self, agent: Agent) -> str | None:
        provider = self._provider(agent)
        return str(provider.pk) if provider is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_effective_model(self, agent: Agent) -> str | None:
        """As ``agents.providers.registry.target_for`` chooses, without building an adapter."""
        provider = self._provider(agent)
        if agent.model:
            return agent.model
        if provider is not None and provider.default_chat_model:
            return provider.default_chat_model
        if provider is None or provider.kind == Provider.Kind.LOCAL:
            return settings.DEFAULT_CHAT_MODEL
        return None


# --- tools --------------------------------------------------------------------------------


def _default_parameters() -> dict:
    return {"type": "object", "properties": {}}


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Look up an order",
            value={
                "name": "get_order",
                "description": "Fetch an order by its number.",
                "method": "GET",
                "url_template": "https://api.example.com/orders/{order_id}",
                "headers": {"Authorization": "Bearer s3cr3t"},
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string", "description": "The order number"}},
                    "required": ["order_id"],
                },
                "timeout_seconds": 10,
            },
            request_only=True,
        )
    ]
)
class ToolSerializer(UniqueNameMixin, StrictModelSerializer):
    headers = serializers.DictField(
        child=serializers.CharField(max_length=8192, allow_blank=True, trim_whitespace=False),
        write_only=True,
        required=False,
        help_text="Write-only (they often carry credentials): stored encrypted, never returned. "
        "On update they replace the stored headers entirely.",
    )
    header_names = serializers.SerializerMethodField(help_text="Names of the stored headers.")
    parameters = serializers.JSONField(
        required=False,
        default=_default_parameters,
        help_text="JSON Schema (2020-12) of the arguments: an object schema, "
        '`{"type": "object", "properties": {...}}`.',
    )
    unique_name_message = "A tool with this name already exists in the project."

    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "description",
            "method",
            "url_template",
            "headers",
            "header_names",
            "parameters",
            "timeout_seconds",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "header_names", "created_at", "updated_at"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_header_names(self, tool: Tool) -> list[str]:
        return sorted(tool.headers or {})

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HEADERS:
            raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise serializers.ValidationError(f"{name!r} is not a valid header name.")
            if name.lower() in _RESERVED_HEADERS:
                raise serializers.ValidationError(f"{name} is set by the HTTP client; a tool may not set it.")
            if any(c in header_value for c in "\r\n\0"):
                raise serializers.ValidationError(f"The value of {name} may not contain line breaks.")
        return value

    def validate_parameters(self, value: Any) -> dict:
        try:
            validate_tool_parameters(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["parameters"]) from None
        return value

    def validate(self, attrs: dict) -> dict:
        instance = self.instance
        url_template = attrs.get("url_template", getattr(instance, "url_template", ""))
        parameters = attrs.get("parameters", getattr(instance, "parameters", None))
        if "url_template" in attrs or "parameters" in attrs:
            try:
                validate_tool_url(url_template, parameters)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from None
        return attrs


# --- tool bindings ------------------------------------------------------------------------


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Bind a tool with a fixed argument",
            value={
                "agent": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "tool": "0b8b5c52-6a0e-4d0c-9a61-0d8f2d4b2a11",
                "config": {"region": "eu"},
            },
            request_only=True,
        )
    ]
)
class ToolBindingSerializer(StrictModelSerializer):
    agent = _scoped(Agent.objects.all(), "agent")
    tool = _scoped(Tool.objects.all(), "tool")
    config = serializers.JSONField(
        required=False, help_text="Fixed arguments merged over the model's on every call (they win)."
    )

    class Meta:
        model = ToolBinding
        fields = ["id", "agent", "tool", "config", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_config(self, value: Any) -> dict:
        return _json_object(value, "config")

    def validate(self, attrs: dict) -> dict:
        agent, tool = attrs.get("agent"), attrs.get("tool")
        if agent is not None and tool is not None and ToolBinding.objects.filter(agent=agent, tool=tool).exists():
            raise serializers.ValidationError({"tool": ["This tool is already bound to this agent."]})
        return attrs


class ToolBindingUpdateSerializer(ToolBindingSerializer):
    """Only ``config`` changes; to bind another tool, delete the binding and create one."""

    agent = serializers.PrimaryKeyRelatedField(read_only=True)
    tool = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(ToolBindingSerializer.Meta):
        read_only_fields = ["id", "agent", "tool", "created_at", "updated_at"]
