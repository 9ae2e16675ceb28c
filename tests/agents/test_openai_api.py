"""The official openai SDK as a client of our /v1 API (in process, over httpx's ASGI transport)."""

from __future__ import annotations

import httpx2
import openai
import pytest

from agents.models import Agent, Provider
from tests.conftest import run_async
from tests.fake_openai import Fail, Reply
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_test_connection", "fast_retries")]


@pytest.fixture
def upstream(tenant, fake_openai):
    return Provider.objects.create(
        project=tenant.project,
        name="up",
        base_url=fake_openai.base_url,
        api_key="sk-upstream",
        default_chat_model="gpt-4o-mini",
        is_default=True,
    )


def sdk(raw_key: str) -> openai.AsyncOpenAI:
    from config.asgi import application

    transport = httpx2.ASGITransport(app=application)
    return openai.AsyncOpenAI(
        api_key=raw_key,
        base_url="http://testserver/v1",
        http_client=httpx2.AsyncClient(transport=transport, base_url="http://testserver"),
        max_retries=0,
    )


def call(raw_key, fn):
    async def go():
        async with sdk(raw_key) as client:
            return await fn(client)

    return run_async(go)


def test_a_plain_completion_through_the_default_provider(tenant, upstream, fake_openai):
    completion = call(
        tenant.write_key.raw,
        lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}]),
    )

    assert completion.choices[0].message.content == "Echo: hi there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    record = UsageRecord.objects.get()
    assert record.api_key_id == tenant.write_key.pk and record.project_id == tenant.project.pk
    assert record.total_tokens == completion.usage.total_tokens
    assert fake_openai.chat_requests()[0].body["model"] == "gpt-4o-mini"


def test_a_streamed_completion_with_usage(tenant, upstream):
    async def stream(client):
        chunks = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream me please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        return [chunk async for chunk in chunks]

    chunks = call(tenant.write_key.raw, stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert UsageRecord.objects.get().operation == "stream"


def test_provider_slash_model_picks_a_named_provider(tenant, upstream, fake_openai):
    completion = call(
        tenant.write_key.raw,
        lambda c: c.chat.completions.create(model="up/gpt-4.1-nano", messages=[{"role": "user", "content": "x"}]),
    )

    assert completion.model == "up/gpt-4.1-nano"
    assert fake_openai.chat_requests()[0].body["model"] == "gpt-4.1-nano"


def test_an_agent_name_as_model_applies_its_instructions(tenant, upstream, fake_openai):
    Agent.objects.create(project=tenant.project, name="support", instructions="Be kind.", temperature=0.2)

    completion = call(
        tenant.write_key.raw,
        lambda c: c.chat.completions.create(model="support", messages=[{"role": "user", "content": "hello"}]),
    )

    assert completion.choices[0].message.content == "Echo: hello"
    sent = fake_openai.chat_requests()[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
    assert sent["temperature"] == 0.2 and sent["model"] == "gpt-4o-mini"
    assert UsageRecord.objects.get().agent_id is not None


def test_models_lists_agents_and_provider_models(tenant, upstream):
    Agent.objects.create(project=tenant.project, name="support")

    models = call(tenant.read_key.raw, lambda c: c.models.list())

    assert {m.id for m in models.data} == {"support", "up/gpt-4o-mini"}


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("ak_live_" + "x" * 40, openai.AuthenticationError),
        ("garbage", openai.AuthenticationError),
    ],
)
def test_bad_keys_raise_the_sdks_authentication_error(upstream, key, error):
    with pytest.raises(error) as caught:
        call(key, lambda c: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]))

    assert caught.value.status_code == 401
    assert caught.value.body["code"] in ("api_key_invalid", "api_key_malformed", "not_authenticated")


def test_a_read_key_cannot_call_models(tenant, upstream):
    with pytest.raises(openai.PermissionDeniedError):
        call(
            tenant.read_key.raw,
            lambda c: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]),
        )


def test_invalid_requests_raise_bad_request_with_the_param(tenant, upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        call(tenant.write_key.raw, lambda c: c.chat.completions.create(model="m", messages=[], temperature=5))

    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["param"] in ("messages", "temperature")
    assert UsageRecord.objects.count() == 0


def test_upstream_failures_reach_the_sdk_as_errors(tenant, upstream, fake_openai):
    fake_openai.script(Fail(401))

    with pytest.raises(openai.APIStatusError) as caught:
        call(
            tenant.write_key.raw,
            lambda c: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]),
        )

    assert caught.value.status_code == 502 and caught.value.body["code"] == "provider_auth_failed"
    assert UsageRecord.objects.get().status == "failed"


def test_a_stream_whose_upstream_fails_first_is_an_http_error(tenant, upstream, fake_openai):
    fake_openai.script(Fail(500), Fail(500), Fail(500))

    async def stream(client):
        chunks = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
        return [chunk async for chunk in chunks]

    with pytest.raises(openai.APIStatusError) as caught:
        call(tenant.write_key.raw, stream)

    assert caught.value.status_code == 502


def test_jwt_is_not_accepted_on_the_openai_routes(tenant, upstream):
    from tests.conftest import jwt_for

    with pytest.raises(openai.AuthenticationError):
        call(jwt_for(tenant.owner), lambda c: c.models.list())


def test_a_scripted_reply_is_returned_verbatim(tenant, upstream, fake_openai):
    fake_openai.script(Reply("exactly this"))

    completion = call(
        tenant.write_key.raw,
        lambda c: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]),
    )

    assert completion.choices[0].message.content == "exactly this"
