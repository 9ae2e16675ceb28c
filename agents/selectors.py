"""Reads on the model-call hot path, cached in process for ``ROUTING_CACHE_SECONDS``.

Every call to ``/v1/chat/completions`` needs the agent it names, the project's default
provider and the agent's tools; reading them per call cost several milliseconds. A write in
this process forgets the project's entries at once (signals in ``agents.apps``); other
processes see it within the bound, like revoked API keys.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from agents.models import Agent, Provider, ToolBinding

_MAX_ENTRIES = 10_000
_cache: dict[tuple, tuple[Any, float]] = {}  # (project id, kind, key) -> (value, stored at)


async def _cached(key: tuple, load: Callable[[], Awaitable[Any]]) -> Any:
    ttl = settings.ROUTING_CACHE_SECONDS
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[1] < ttl:
        return hit[0]
    value = await load()
    if ttl > 0:
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (value, now)
    return value


def routing_forget(project_id) -> None:
    """Drop a project's cached routing (after any write to its agents, providers or tools)."""
    project_id = str(project_id)
    for key in [k for k in _cache if k[0] == project_id]:
        _cache.pop(key, None)


def forget_on_write(sender, instance, **kwargs) -> None:
    """Signal receiver (post_save/post_delete of agents, providers, tools, bindings, collections;
    m2m_changed of agents' collections)."""
    routing_forget(instance.project_id)


async def aactive_agent_by_name(project_id, name: str) -> Agent | None:
    return await _cached(
        (str(project_id), "agent", name),
        lambda: Agent.objects.filter(project_id=project_id, name=name, is_active=True).afirst(),
    )


async def adefault_provider(project_id) -> Provider | None:
    return await _cached(
        (str(project_id), "default-provider", None),
        lambda: Provider.objects.filter(project_id=project_id, is_default=True).afirst(),
    )


async def aprovider(project_id, provider_id) -> Provider | None:
    return await _cached(
        (str(project_id), "provider", str(provider_id)),
        lambda: Provider.objects.filter(project_id=project_id, pk=provider_id).afirst(),
    )


async def aprovider_by_name(project_id, name: str) -> Provider | None:
    return await _cached(
        (str(project_id), "provider-name", name),
        lambda: Provider.objects.filter(project_id=project_id, name=name).afirst(),
    )


async def aagent_bindings(agent: Agent) -> list[ToolBinding]:
    async def load():
        query = ToolBinding.objects.select_related("tool").filter(agent_id=agent.pk, project_id=agent.project_id)
        return [binding async for binding in query]

    return await _cached((str(agent.project_id), "bindings", str(agent.pk)), load)


async def aagent_collections(agent: Agent) -> list:
    """The agent's knowledge collections (with their embedding providers), or []."""

    async def load():
        query = agent.collections.select_related("embedding_provider").filter(project_id=agent.project_id)
        return [collection async for collection in query]

    return await _cached((str(agent.project_id), "collections", str(agent.pk)), load)
