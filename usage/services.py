"""Writes to the usage ledger: one row per model call.

A request may *defer* its rows (:func:`ledger_defer`): the gateway then collects them and the
view writes them in one statement after the response has been sent (:func:`usage_record_many`),
so the ledger never delays an answer. Without a deferral (Celery runs, streams, scripts) each
row is written when its call ends.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass, field

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
    rows = _deferred.get() or []
    _deferred.reset(token)
    return rows


def ledger_collect(record: UsageRecord) -> bool:
    """Keep ``record`` for a deferred write if this context defers; False if it does not."""
    rows = _deferred.get()
    if rows is None:
        return False
    rows.append(record)
    return True
