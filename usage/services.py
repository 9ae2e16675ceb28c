"""Writes to the usage ledger: one row per model call.

A request may *defer* its rows (:func:`ledger_defer`): the gateway then collects them and the
view writes them in one statement after the response has been sent (:func:`usage_record_many`),
so the ledger never delays an answer; a streamed response keeps collecting while it streams
(:func:`ledger_bind`). Without a deferral (Celery runs, scripts) each row is written when its
call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async

from usage.models import UsageRecord
from usage.pricing import cost_of, price_for


@dataclass
class CallContext:
    """Who made a model call and on whose behalf: the ledger's dimensions."""

    project_id: object
    api_key_id: object = None
    user_id: object = None
    agent_id: object = None
    run_id: object = None
    conversation_id: object = None
    request_id: str = ""
    extra: dict = field(default_factory=dict)


def usage_build(
    *,
    ctx: CallContext,
    provider_id,
    provider_kind: str,
    model: str,
    operation: str,
    prompt_tokens: int,
    completion_tokens: int,
    estimated: bool,
    latency_ms: int,
    status: str,
    error_code: str = "",
) -> UsageRecord:
    prices = price_for(model)
    return UsageRecord(
        project_id=ctx.project_id,
        api_key_id=ctx.api_key_id,
        user_id=ctx.user_id,
        agent_id=ctx.agent_id,
        run_id=ctx.run_id,
        conversation_id=ctx.conversation_id,
        request_id=ctx.request_id[:128],
        provider_id=provider_id,
        provider_kind=provider_kind,
        model=model[:200],
        operation=operation,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        usage_estimated=estimated,
        input_price_per_million=prices[0],
        output_price_per_million=prices[1],
        cost=cost_of(prompt_tokens, completion_tokens, prices),
        latency_ms=max(0, latency_ms),
        status=status,
        error_code=error_code[:64],
    )


def usage_record(**kwargs) -> UsageRecord:
    record = usage_build(**kwargs)
    record.save(force_insert=True)
    return record


def usage_record_many(records: list[UsageRecord]) -> None:
    """Write built records in one INSERT."""
    UsageRecord.objects.bulk_create(records)


_deferred: ContextVar[list[UsageRecord] | None] = ContextVar("usage_deferred", default=None)


def ledger_defer() -> Token:
    """From here on in this context, the gateway collects rows instead of writing them."""
    return _deferred.set([])


def ledger_take(token: Token) -> list[UsageRecord]:
    """End the deferral begun by ``token``; the rows collected meanwhile, for the caller to write."""
    rows = _deferred.get()
    _deferred.reset(token)
    return rows if rows is not None else []  # the same list: a stream may still be adding to it


def ledger_collect(record: UsageRecord) -> bool:
    """Keep ``record`` for a deferred write if this context defers; False if it does not."""
    rows = _deferred.get()
    if rows is None:
        return False
    rows.append(record)
    return True


def ledger_current() -> list[UsageRecord] | None:
    """The rows this context is collecting, or None when it writes them at once."""
    return _deferred.get()


# Ledger writes started on an event loop, kept until they land (see ledger_flush).
_writing: set[asyncio.Task] = set()


def ledger_flush(rows: list[UsageRecord]) -> None:
    """Write and forget whatever ``rows`` holds (whoever comes first: the response's close, or a
    stream that ended early).

    Servers close responses on a thread, where this writes at once. Called on an event loop
    (Django's test client closes streamed responses there), it hands the write to a thread and
    keeps the task until it lands; :func:`ledger_drain` waits for such writes."""
    batch = rows[:]
    rows.clear()
    if not batch:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        usage_record_many(batch)
        return
    task = loop.create_task(sync_to_async(usage_record_many)(batch))
    _writing.add(task)
    task.add_done_callback(_writing.discard)


async def ledger_drain() -> None:
    """Wait for the writes :func:`ledger_flush` started on this event loop."""
    while _writing:
        await asyncio.gather(*list(_writing), return_exceptions=True)


async def ledger_bind(content: AsyncIterator, rows: list[UsageRecord]) -> AsyncIterator:
    """Iterate a streamed response's ``content`` with ``rows`` as this context's deferral: the
    calls it makes are collected there and written when the response is closed, after its last
    byte. A stream that does not run to its end (the client went away: no close will come)
    writes what it collected at once."""
    token = _deferred.set(rows)
    finished = False
    try:
        async for part in content:
            yield part
        finished = True
    finally:
        with contextlib.suppress(ValueError):  # closed from another context (finalised elsewhere)
            _deferred.reset(token)
        if not finished and rows:
            await asyncio.shield(asyncio.ensure_future(sync_to_async(ledger_flush)(rows)))
