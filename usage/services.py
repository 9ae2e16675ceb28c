"""Writes to the usage ledger. One row per model call, one INSERT per row."""

from __future__ import annotations

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


def _build(
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
    record = _build(**kwargs)
    record.save(force_insert=True)
    return record


async def ausage_record(**kwargs) -> UsageRecord:
    record = _build(**kwargs)
    await record.asave(force_insert=True)
    return record
