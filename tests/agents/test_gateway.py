"""The model gateway against a loopback OpenAI-compatible server: the real openai SDK runs.

Each call writes exactly one usage record, succeeded or failed, with provider-reported or
(marked) estimated token counts; retries honour Retry-After; upstream errors map to ours.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from agents.models import Provider
from agents.providers import gateway
from agents.providers.base import (
    ChatRequest,
    ProviderAuthFailed,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from agents.providers.registry import target_for
from tests.fake_openai import Fail, Hang, Reply
from usage.models import UsageRecord
from usage.services import CallContext

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["aiohttp", "httpx"])
def provider(request, tenant, fake_openai, fast_retries, settings):
    """Every test runs with each HTTP client the SDK may use (PROVIDER_HTTP_CLIENT)."""
    settings.PROVIDER_HTTP_CLIENT = request.param
    return Provider.objects.create(
        project=tenant.project,
        name="fake",
        kind="openai",
        base_url=fake_openai.base_url,
        api_key="sk-test-123",
        default_chat_model="gpt-4o-mini",
        max_retries=2,
        timeout_seconds=5,
    )


def ask(provider, text="hello there", *, stream=False, **target_overrides):
    target = target_for(provider)
    for name, value in target_overrides.items():
        setattr(target.adapter, name, value)
    ctx = CallContext(project_id=provider.project_id, request_id="req-1")
    request = ChatRequest(messages=[{"role": "user", "content": text}], model=target.model)

    async def run():
        if stream:
            return [chunk async for chunk in gateway.stream(ctx, target, request)]
        return await gateway.chat(ctx, target, request)

    return async_to_sync(run)()


def test_a_chat_call_returns_the_answer_and_writes_one_usage_record(provider, fake_openai):
    result = ask(provider, "hello there")

    assert result.content == "Echo: hello there"
    record = UsageRecord.objects.get()
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (5, 3, 8)
    assert record.usage_estimated is False and record.status == "succeeded"
    assert record.model == "gpt-4o-mini" and record.provider_id == provider.pk and record.operation == "chat"
    assert record.input_price_per_million == Decimal("0.15") and record.output_price_per_million == Decimal("0.60")
    assert record.cost == (5 * Decimal("0.15") + 3 * Decimal("0.60")) / 1_000_000
    assert record.request_id == "req-1"
    sent = fake_openai.chat_requests()[0]
    assert {k.lower(): v for k, v in sent.headers.items()}["authorization"] == "Bearer sk-test-123"
    assert sent.body["model"] == "gpt-4o-mini"


def test_a_stream_asks_for_usage_and_records_the_reported_counts(provider, fake_openai):
    chunks = ask(provider, "one two three", stream=True)

    assert "".join(c.content for c in chunks) == "Echo: one two three"
    assert fake_openai.chat_requests()[0].body["stream_options"] == {"include_usage": True}
    record = UsageRecord.objects.get()
    assert record.operation == "stream" and record.usage_estimated is False
    assert (record.prompt_tokens, record.completion_tokens) == (6, 4)


def test_a_stream_without_usage_is_estimated_and_marked(provider, fake_openai):
    fake_openai.script(Reply("a fairly long answer without any usage", usage=False))

    ask(provider, stream=True)

    record = UsageRecord.objects.get()
    assert record.usage_estimated is True
    assert record.completion_tokens == len("a fairly long answer without any usage") // 4 + 1


def test_429_with_retry_after_is_retried_and_counted_once(provider, fake_openai):
    fake_openai.script(Fail(429, retry_after=0), Fail(503))

    result = ask(provider, "hi")

    assert result.content == "Echo: hi"
    assert len(fake_openai.chat_requests()) == 3
    assert UsageRecord.objects.count() == 1 and UsageRecord.objects.get().status == "succeeded"


def test_persistent_5xx_fails_after_the_retries_and_is_recorded_failed(provider, fake_openai):
    fake_openai.script(Fail(500), Fail(502), Fail(500))

    with pytest.raises(ProviderUnavailable) as caught:
        ask(provider)

    assert caught.value.status_code == 502 and caught.value.details["upstream_status"] == 500
    assert len(fake_openai.chat_requests()) == 3
    record = UsageRecord.objects.get()
    assert (record.status, record.error_code, record.total_tokens, record.cost) == (
        "failed",
        "provider_unavailable",
        0,
        0,
    )


def test_upstream_401_is_our_502_provider_auth_failed_without_retry(provider, fake_openai):
    fake_openai.script(Fail(401, message="bad key"))

    with pytest.raises(ProviderAuthFailed) as caught:
        ask(provider)

    assert (caught.value.status_code, caught.value.code) == (502, "provider_auth_failed")
    assert len(fake_openai.chat_requests()) == 1


def test_upstream_400_is_a_rejected_request(provider, fake_openai):
    fake_openai.script(Fail(400, message="model does not exist"))

    with pytest.raises(ProviderRejected) as caught:
        ask(provider)

    assert "model does not exist" in caught.value.message and caught.value.status_code == 400


def test_a_retry_after_too_long_to_wait_is_returned_at_once(provider, fake_openai, settings):
    settings.PROVIDER_MAX_RETRY_AFTER = 10
    fake_openai.script(Fail(429, retry_after=120))

    with pytest.raises(ProviderRateLimited) as caught:
        ask(provider)

    assert caught.value.details["retry_after"] == 120 and caught.value.status_code == 429
    assert len(fake_openai.chat_requests()) == 1


def test_an_upstream_that_hangs_times_out(provider, fake_openai):
    fake_openai.script(Hang(2))

    with pytest.raises(ProviderTimeout):
        ask(provider, timeout=0.3, max_retries=0)

    assert UsageRecord.objects.get().error_code == "provider_timeout"


def test_a_stream_that_fails_before_output_is_recorded_failed(provider, fake_openai):
    fake_openai.script(Fail(500), Fail(500), Fail(500))

    with pytest.raises(ProviderUnavailable):
        ask(provider, stream=True)

    assert UsageRecord.objects.get().status == "failed"


def test_embeddings_go_through_the_gateway_and_are_metered(provider, fake_openai):
    target = target_for(provider, "text-embedding-3-small", embedding=True)
    ctx = CallContext(project_id=provider.project_id)

    result = async_to_sync(gateway.embed)(ctx, target, ["one two", "three"])

    assert len(result.vectors) == 2 and result.vectors[0] != result.vectors[1]
    record = UsageRecord.objects.get()
    assert (record.operation, record.prompt_tokens, record.model) == ("embedding", 3, "text-embedding-3-small")
