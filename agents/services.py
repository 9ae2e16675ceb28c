"""Writes for agents and what they use: providers, agents, tools and tool bindings.

Every service takes keyword arguments and checks what the database cannot (relations stay inside
the project, tool URLs are safe to call). Unique names are checked by the serializers for a
friendly error and enforced by constraints; a constraint that still fires (two requests racing)
becomes the same 400, never a 500. Errors are :class:`django.core.exceptions.ValidationError`
keyed by field, which the API renders as field errors.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model

from agents.models import Agent, Provider, Tool, ToolBinding
from agents.tools import validate_tool_parameters, validate_tool_url
from projects.models import Project, Team

PROVIDER_FIELDS = frozenset(
    {
        "name",
        "kind",
        "base_url",
        "api_key",
        "organization",
        "default_chat_model",
        "default_embedding_model",
        "timeout_seconds",
        "max_retries",
        "is_default",
    }
)
# The fields an agent's services write, in the order forms show them.
AGENT_FIELDS = (
    "name",
    "description",
    "instructions",
    "provider",
    "model",
    "temperature",
    "max_tokens",
    "team",
    "is_active",
    "metadata",
    "max_tool_rounds",
    "memory_window",
    "auto_retrieval",
    "retrieval_top_k",
)
TOOL_FIELDS = frozenset({"name", "description", "method", "url_template", "headers", "parameters", "timeout_seconds"})
BINDING_FIELDS = frozenset({"config", "tool"})

# constraint name -> (field, message) for the unique constraints a racing request can still hit
_UNIQUE_ERRORS = {
    "provider_unique_name": ("name", "A provider with this name already exists in the project."),
    "provider_one_default_per_project": ("is_default", "Another provider became the default at the same time."),
    "agent_unique_name": ("name", "An agent with this name already exists in the project."),
    "tool_unique_name": ("name", "A tool with this name already exists in the project."),
    "toolbinding_unique": ("tool", "This tool is already bound to this agent."),
}


def _save(obj: Model, *, update_fields: list[str] | None = None) -> None:
    """Save in a savepoint; a unique constraint violation becomes a field ValidationError."""
    try:
        with transaction.atomic():
            obj.save(update_fields=update_fields)
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        if constraint in _UNIQUE_ERRORS:
            field, message = _UNIQUE_ERRORS[constraint]
            raise ValidationError({field: message}) from None
        raise


def _set(obj: Model, fields: dict[str, Any], allowed: Collection[str]) -> list[str]:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no settable field(s) {sorted(unknown)}")
    for name, value in fields.items():
        setattr(obj, name, value)
    return list(fields)


def _same_project(project_id, **related: Model | None) -> None:
    """Relations must be rows of the project itself (the API's scoped fields ensure it; the
    services do not rely on that)."""
    errors = {
        field: f"No such {field} in this project."
        for field, obj in related.items()
        if obj is not None and obj.project_id != project_id
    }
    if errors:
        raise ValidationError(errors)


def _same_project_all(project_id, field: str, rows: list | None) -> None:
    if rows and any(row.project_id != project_id for row in rows):
        raise ValidationError({field: f"No such {field} in this project."})


# --- providers ----------------------------------------------------------------------------


def _clear_other_defaults(provider: Provider) -> None:
    # The project row is the lock: two requests making different providers the default run one
    # after the other, instead of both clearing and one failing the one-default constraint.
    Project.objects.select_for_update().filter(pk=provider.project_id).values_list("pk").first()
    Provider.objects.filter(project_id=provider.project_id, is_default=True).exclude(pk=provider.pk).update(
        is_default=False
    )


def provider_create(*, project: Project, name: str, **fields: Any) -> Provider:
    """Create a provider. ``is_default=True`` makes it the project's only default provider.
    ``api_key`` is stored encrypted (``EncryptedTextField``)."""
    provider = Provider(project=project)
    _set(provider, {"name": name, **fields}, PROVIDER_FIELDS)
    provider.full_clean(exclude=["project"], validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        if provider.is_default:
            _clear_other_defaults(provider)
        _save(provider)
    return provider


def provider_update(*, provider: Provider, **fields: Any) -> Provider:
    """Change the given fields. Making it the default unsets the project's other default in the
    same transaction; leaving ``api_key`` out keeps the stored key, ``""`` removes it."""
    changed = _set(provider, fields, PROVIDER_FIELDS)
    if not changed:
        return provider
    provider.full_clean(exclude=["project"], validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        if provider.is_default and "is_default" in changed:
            _clear_other_defaults(provider)
        _save(provider, update_fields=[*changed, "updated_at"])
    return provider


# --- agents -------------------------------------------------------------------------------


def agent_create(
    *,
    project: Project,
    name: str,
    instructions: str = "",
    provider: Provider | None = None,
    team: Team | None = None,
    collections: list | None = None,
    **fields: Any,
) -> Agent:
    """Create an agent. With no ``provider`` it uses the project's default provider at run time
    (else the deployment's); with no ``model``, that provider's default chat model."""
    _same_project(project.pk, provider=provider, team=team)
    _same_project_all(project.pk, "collections", collections)
    agent = Agent(project=project)
    fields = {"name": name, "instructions": instructions, "provider": provider, "team": team, **fields}
    _set(agent, fields, AGENT_FIELDS)
    agent.full_clean(exclude=["project", "provider", "team"], validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        _save(agent)
        if collections:
            agent.collections.set(collections)
    return agent


def agent_update(*, agent: Agent, collections: list | None = None, **fields: Any) -> Agent:
    """Change the given fields; ``collections``, when given, replaces the agent's collections."""
    _same_project(agent.project_id, provider=fields.get("provider"), team=fields.get("team"))
    _same_project_all(agent.project_id, "collections", collections)
    changed = _set(agent, fields, AGENT_FIELDS)
    if changed:
        agent.full_clean(exclude=["project", "provider", "team"], validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        if changed:
            _save(agent, update_fields=[*changed, "updated_at"])
        if collections is not None:
            agent.collections.set(collections)
    return agent


# --- tools --------------------------------------------------------------------------------


def _validate_tool(tool: Tool) -> None:
    tool.full_clean(exclude=["project"], validate_unique=False, validate_constraints=False)
    validate_tool_parameters(tool.parameters)
    validate_tool_url(tool.url_template, tool.parameters)


def tool_create(*, project: Project, name: str, url_template: str, **fields: Any) -> Tool:
    """Create an HTTP tool; its URL must pass :func:`agents.tools.validate_tool_url`."""
    tool = Tool(project=project)
    _set(tool, {"name": name, "url_template": url_template, **fields}, TOOL_FIELDS)
    _validate_tool(tool)
    _save(tool)
    return tool


def tool_update(*, tool: Tool, **fields: Any) -> Tool:
    """Change the given fields; ``headers``, when given, replace the stored ones entirely."""
    changed = _set(tool, fields, TOOL_FIELDS)
    if changed:
        _validate_tool(tool)
        _save(tool, update_fields=[*changed, "updated_at"])
    return tool


def tool_binding_create(*, project: Project, agent: Agent, tool: Tool, config: dict | None = None) -> ToolBinding:
    """Give ``agent`` the use of ``tool``; ``config`` holds fixed arguments merged into every call."""
    _same_project(project.pk, agent=agent, tool=tool)
    binding = ToolBinding(project=project, agent=agent, tool=tool, config=config or {})
    _save(binding)
    return binding


def tool_binding_update(*, binding: ToolBinding, **fields: Any) -> ToolBinding:
    """Change ``config`` (the API) or ``tool`` (the admin's inline rows)."""
    _same_project(binding.project_id, tool=fields.get("tool"))
    changed = _set(binding, fields, BINDING_FIELDS)
    if changed:
        _save(binding, update_fields=[*changed, "updated_at"])
    return binding
