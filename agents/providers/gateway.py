"""Every model call goes through here: the adapter answers, the gateway times the call and
writes exactly one usage record, once the answer (or the stream) is complete.

A call that fails is recorded as ``failed`` with the error code; a stream the client abandons
is recorded as ``cancelled`` with what was produced so far. Token counts come from the
provider; when it reports none (a stream without usage, say) they are estimated and marked so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from agents.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderError,
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
)
from agents.providers.registry import Target
from config.exceptions import DomainError
from usage.services import CallContext, ledger_collect, usage_build

# Ledger writes in flight, so that none is garbage-collected before it lands.
_pending: set[asyncio.Task] = set()


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


async def _record(
    ctx: CallContext,
    target: Target,
    *,
    operation: str,
    usage: Usage,
    started: float,
    status: str,
    error_code: str = "",
    defer: bool = True,
) -> None:
    """Hand the row to a deferring request (written after its response), or write it now in a
    task of its own: a client hanging up (cancelling us) must not lose it."""
    record = usage_build(
        ctx=ctx,
        provider_id=target.provider_id,
        provider_kind=target.provider_kind,
        model=target.model,
        operation=operation,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        estimated=usage.estimated,
        latency_ms=_ms(started),
        status=status,
        error_code=error_code,
    )
    if defer and ledger_collect(record):
        return
    task = asyncio.ensure_future(record.asave(force_insert=True))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    await asyncio.shield(task)


async def drain() -> None:
    """Wait for ledger writes in flight (tests, shutdown)."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)


async def chat(ctx: CallContext, target: Target, request: ChatRequest) -> ChatResult:
    request.model = target.model
    started = time.perf_counter()
    try:
        result = await target.adapter.chat(request)
    except asyncio.CancelledError:
        # The caller went away mid-call: recorded at once, since its request will not finish.
        await _record(
            ctx,
            target,
            operation="chat",
            usage=Usage(),
            started=started,
            status="cancelled",
            error_code="client_disconnected",
            defer=False,
        )
        raise
    except DomainError as exc:
        # A failed call is recorded with no tokens: nothing is charged for it.
        await _record(
            ctx,
            target,
            operation="chat",
            usage=Usage(),
            started=started,
            status="failed",
            error_code=exc.code,
        )
        raise
    await _record(ctx, target, operation="chat", usage=result.usage, started=started, status="succeeded")
    return result


async def stream(ctx: CallContext, target: Target, request: ChatRequest) -> AsyncIterator[ChatChunk]:
    """Yield the adapter's chunks; record once at the end, however it ends."""
    request.model = target.model
    started = time.perf_counter()
    text: list[str] = []
    usage: Usage | None = None
    status, error_code = "cancelled", "client_disconnected"
    try:
        async for chunk in target.adapter.stream(request):
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.content:
                text.append(chunk.content)
            yield chunk
        status, error_code = "succeeded", ""
    except ProviderError as exc:
        status, error_code = "failed", exc.code
        raise
    except DomainError as exc:
        status, error_code = "failed", exc.code
        raise
    finally:
        if usage is None:
            usage = Usage(estimate_prompt_tokens(request.messages), estimate_tokens("".join(text)), estimated=True)
        # Deferred to the response's close when the request defers (ledger_bind), unless the
        # caller went away: no close will come then.
        await _record(
            ctx,
            target,
            operation="stream",
            usage=usage,
            started=started,
            status=status,
            error_code=error_code,
            defer=status != "cancelled",
        )


async def embed(ctx: CallContext, target: Target, texts: list[str]) -> EmbeddingResult:
    started = time.perf_counter()
    try:
        result = await target.adapter.embed(texts, target.model)
    except DomainError as exc:
        await _record(
            ctx, target, operation="embedding", usage=Usage(), started=started, status="failed", error_code=exc.code
        )
        raise
    await _record(ctx, target, operation="embedding", usage=result.usage, started=started, status="succeeded")
    return result
