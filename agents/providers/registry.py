"""Which adapter serves a call: a project's Provider row, its default one, or the deployment's."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from agents.models import Provider
from agents.providers.base import Adapter, ProviderNotConfigured


@dataclass
class Target:
    """A resolved destination for a model call."""

    adapter: Adapter
    model: str
    provider_id: object = None  # None: the deployment default
    provider_kind: str = ""
    provider_name: str = "default"


def adapter_for(provider: Provider | None) -> Adapter:
    """The adapter for a Provider row, or (``None``) for the deployment default."""
    if provider is None:
        if settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL:
            from agents.providers.openai import OpenAIAdapter

            return OpenAIAdapter(
                api_key=settings.OPENAI_API_KEY,
                base_url=settings.OPENAI_BASE_URL or None,
                organization=settings.OPENAI_ORGANIZATION or None,
                timeout=settings.PROVIDER_TIMEOUT_SECONDS,
                max_retries=settings.PROVIDER_MAX_RETRIES,
            )
        from agents.providers.local import LocalAdapter

        return LocalAdapter()
    if provider.kind == Provider.Kind.LOCAL:
        from agents.providers.local import LocalAdapter

        return LocalAdapter()
    from agents.providers.openai import OpenAIAdapter

    return OpenAIAdapter(
        api_key=provider.api_key,
        base_url=provider.base_url or None,
        organization=provider.organization or None,
        timeout=provider.timeout_seconds,
        max_retries=provider.max_retries,
    )


def target_for(provider: Provider | None, model: str = "", *, embedding: bool = False) -> Target:
    adapter = adapter_for(provider)
    if provider is not None:
        default = provider.default_embedding_model if embedding else provider.default_chat_model
    else:
        default = ""
    if not default:
        deployment_default = settings.DEFAULT_EMBEDDING_MODEL if embedding else settings.DEFAULT_CHAT_MODEL
        default = deployment_default if provider is None or provider.kind == Provider.Kind.LOCAL else ""
    chosen = model or default
    if not chosen:
        raise ProviderNotConfigured(
            f"Provider '{provider.name}' has no default {'embedding' if embedding else 'chat'} model; name a model."
        )
    return Target(
        adapter=adapter,
        model=chosen,
        provider_id=provider.pk if provider else None,
        provider_kind=adapter.kind,
        provider_name=provider.name if provider else "default",
    )
