"""Agent chat (plain and SSE), conversations and memory, summarize, translate, heartbeats, and a
client hanging up mid-stream."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agents.chat_views import with_heartbeat
from agents.models import Agent, Conversation, Message, Provider
from tests.conftest import run_async, stream_post, user_client
from tests.fake_openai import Reply
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


@pytest.fixture
def upstream(tenant, fake_openai):
    return Provider.objects.create(
        project=tenant.project,
        name="up",
        base_url=fake_openai.base_url,
        default_chat_model="gpt-4o-mini",
        is_default=True,
    )


@pytest.fixture
def agent(tenant, upstream):
    return Agent.objects.create(project=tenant.project, name="helper", instructions="You help.", memory_window=20)


def sse_events(response) -> list[tuple[str | None, str]]:
    """(event type, data) pairs of an SSE response; comments (heartbeats) are skipped."""
    body = response.sse_body
    events = []
    for block in body.strip().split("\n\n"):
        kind, data = None, []
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((kind, "\n".join(data)))
    return events


def chat(client, agent, **body):
    return client.post(f"/api/v1/agents/{agent.pk}/chat", body, format="json")


def test_an_agent_answers_and_keeps_the_conversation(tenant, agent, fake_openai):
    response = chat(tenant.client("write_key"), agent, message="What is up?")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Echo: What is up?"
    assert body["usage"]["total_tokens"] > 0
    conversation = Conversation.objects.get(pk=body["conversation_id"])
    assert conversation.agent == agent and conversation.title == "What is up?"
    assert list(Message.objects.filter(conversation=conversation).values_list("role", "content")) == [
        ("user", "What is up?"),
        ("assistant", "Echo: What is up?"),
    ]
    sent = fake_openai.chat_requests()[0].body["messages"]
    assert sent[0] == {"role": "system", "content": "You help."}


def test_continuing_a_conversation_sends_its_history_within_the_memory_window(tenant, agent, fake_openai):
    client = tenant.client("write_key")
    first = chat(client, agent, message="one").json()
    chat(client, agent, message="two", conversation_id=first["conversation_id"])
    agent.memory_window = 2
    agent.save()

    chat(client, agent, message="three", conversation_id=first["conversation_id"])

    second_sent = fake_openai.chat_requests()[1].body["messages"]
    assert [m["content"] for m in second_sent] == ["You help.", "one", "Echo: one", "two"]
    third_sent = fake_openai.chat_requests()[2].body["messages"]
    assert [m["content"] for m in third_sent] == ["You help.", "two", "Echo: two", "three"]
    assert Message.objects.filter(conversation_id=first["conversation_id"]).count() == 6


def test_a_streamed_chat_is_sse_with_chunks_a_final_event_and_done(tenant, agent):
    response = stream_post(
        tenant.write_key.raw, f"/api/v1/agents/{agent.pk}/chat", {"message": "stream this", "stream": True}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    events = sse_events(response)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for kind, d in events if kind is None and d != "[DONE]"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Echo: stream this"
    final = json.loads(next(d for kind, d in events if kind == "final"))
    assert final["content"] == text and final["usage"]["total_tokens"] > 0
    assert Message.objects.filter(conversation_id=final["conversation_id"], role="assistant").get().content == text
    assert UsageRecord.objects.get().operation == "stream"


def test_a_conversation_of_another_agent_is_404(tenant, agent):
    other = Agent.objects.create(project=tenant.project, name="other")
    conversation = Conversation.objects.create(project=tenant.project, agent=other)

    response = chat(tenant.client("write_key"), agent, message="x", conversation_id=str(conversation.pk))

    assert response.status_code == 404
    assert UsageRecord.objects.count() == 0


def test_inactive_agents_do_not_answer(tenant, agent):
    agent.is_active = False
    agent.save()

    response = chat(tenant.client("write_key"), agent, message="x")

    assert response.status_code == 400 and response.json()["error"]["code"] == "agent_inactive"


@pytest.mark.parametrize("who", ["viewer", "read_key"])
def test_readers_cannot_chat(tenant, agent, who):
    assert chat(tenant.client(who), agent, message="x").status_code == 403


def test_staff_chat_with_a_jwt_and_the_project_header(tenant, agent):
    response = chat(user_client(tenant.member, tenant.project), agent, message="hi")

    assert response.status_code == 200
    assert UsageRecord.objects.get().user_id == tenant.member.pk


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": "a", "messages": [{"role": "user", "content": "b"}]},
        {"messages": [{"role": "wizard", "content": "x"}]},
    ],
)
def test_bad_chat_bodies_are_400_and_cost_nothing(tenant, agent, body):
    response = chat(tenant.client("write_key"), agent, **body)

    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert UsageRecord.objects.count() == 0 and Conversation.objects.count() == 0


@pytest.mark.parametrize(
    ("style", "expected"), [("concise", "concisely"), ("detailed", "in detail"), ("bullet_points", "bullet points")]
)
def test_summarize_styles_and_length(tenant, upstream, fake_openai, style, expected):
    response = tenant.client("write_key").post(
        "/api/v1/summarize", {"text": "long text", "style": style, "max_length": 50}, format="json"
    )

    assert response.status_code == 200, response.content
    system = fake_openai.chat_requests()[0].body["messages"][0]["content"]
    assert expected in system and "at most 50 words" in system


def test_translate_with_auto_and_explicit_source(tenant, upstream, fake_openai):
    client = tenant.client("write_key")
    client.post("/api/v1/translate", {"text": "Hallo", "target_language": "English"}, format="json")
    streamed = stream_post(
        tenant.write_key.raw,
        "/api/v1/translate",
        {"text": "Hallo", "source_language": "German", "target_language": "English", "stream": True},
    )

    first, second = (r.body["messages"][0]["content"] for r in fake_openai.chat_requests())
    assert "into English" in first and "from" not in first
    assert "from German into English" in second
    assert sse_events(streamed)[-1] == (None, "[DONE]")
    assert UsageRecord.objects.count() == 2


def test_heartbeats_fill_silences():
    async def scenario():
        release = asyncio.Event()

        async def source():
            yield "a"
            await release.wait()
            yield "b"

        out = []
        async for item in with_heartbeat(source(), interval=0.01):
            out.append(item)
            if item.startswith(":"):
                release.set()
        return out

    out = run_async(scenario)

    assert out[0] == "a" and out[-1] == "b"
    assert ": heartbeat\n\n" in out


@pytest.mark.django_db(transaction=True)
def test_a_client_that_hangs_up_stops_the_upstream_call_and_is_recorded(tenant, agent, fake_openai):
    from config.asgi import application

    fake_openai.script(Reply(" ".join(f"w{i}" for i in range(40)), delay=0.05))
    body = json.dumps({"message": "long please", "stream": True}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/v1/agents/{agent.pk}/chat",
        "raw_path": f"/api/v1/agents/{agent.pk}/chat".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {tenant.write_key.raw}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }

    async def scenario():
        incoming: asyncio.Queue = asyncio.Queue()
        await incoming.put({"type": "http.request", "body": body, "more_body": False})
        sent = []

        async def receive():
            return await incoming.get()

        async def send(message):
            sent.append(message)
            if message["type"] == "http.response.body" and b"w1" in message.get("body", b""):
                await incoming.put({"type": "http.disconnect"})  # the client goes away mid-stream

        await asyncio.wait_for(application(scope, receive, send), timeout=10)
        from agents.providers import gateway

        await gateway.drain()
        return sent

    sent = run_async(scenario)

    streamed = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"w1" in streamed and b"w39" not in streamed
    record = UsageRecord.objects.get()
    assert record.status == "cancelled" and record.error_code == "client_disconnected"
    assert record.completion_tokens > 0 and record.usage_estimated
    # and the upstream saw its connection closed: its next write failed
    deadline = time.monotonic() + 3
    while fake_openai.aborted_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_openai.aborted_streams == 1
    assert len(fake_openai.chat_requests()) == 1


def test_the_ledger_is_written_after_the_answer_is_sent(tenant, upstream, keep_test_connection):
    from config.asgi import application

    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
        "headers": [
            (b"host", b"testserver"), (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {tenant.write_key.raw}".encode()), (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip

    async def scenario():
        seen = []
        received = []

        async def receive():
            if not received:
                received.append(True)
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()

        async def send(message):
            if message["type"] == "http.response.body":
                seen.append(await UsageRecord.objects.acount())

        await application(scope, receive, send)
        return seen, await UsageRecord.objects.acount()

    while_sending, after = run_async(scenario)

    assert while_sending == [0]  # the answer left before its usage row was written
    assert after == 1


def test_another_projects_conversation_is_404_and_untouched(tenant, other_tenant, agent):
    their_agent = Agent.objects.create(project=other_tenant.project, name="theirs")
    theirs = Conversation.objects.create(project=other_tenant.project, agent=their_agent)

    response = chat(tenant.client("write_key"), agent, message="x", conversation_id=str(theirs.pk))

    assert response.status_code == 404
    assert not Message.objects.filter(conversation=theirs).exists()
    assert UsageRecord.objects.count() == 0
