"""Agents that answer from knowledge: the automatic retrieval step, the built-in
``knowledge_search`` tool, and the citations of the answer (plain and streamed)."""

from __future__ import annotations

import json

import pytest

from agents.models import Agent, Provider
from knowledge import services
from knowledge.models import Collection, Document
from tests.conftest import stream_post
from tests.fake_openai import Reply, ToolCalls
from tests.knowledge.factories import CollectionFactory
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]

RETURNS = "You may send back any item within 30 days of delivery for a full refund."
SHIPPING = "Parcels leave our warehouse within two business days."


def ingest(collection: Collection, title: str, text: str) -> Document:
    document = services.document_create(
        collection=collection, data=text.encode(), source="text", title=title, content_type="text/plain"
    )
    services.document_parse(document.pk)
    services.document_embed(document.pk)
    return Document.objects.get(pk=document.pk)


@pytest.fixture
def knowledge(tenant) -> Collection:
    # Made before the upstream becomes the default provider: embedded by the local model.
    collection = services.collection_create(project=tenant.project, name="Help")
    ingest(collection, "Returns", RETURNS)
    ingest(collection, "Shipping", SHIPPING)
    return collection


@pytest.fixture
def agent(tenant, knowledge, fake_openai) -> Agent:
    Provider.objects.create(
        project=tenant.project,
        name="up",
        base_url=fake_openai.base_url,
        default_chat_model="gpt-4o-mini",
        is_default=True,
    )
    agent = Agent.objects.create(project=tenant.project, name="helper", instructions="You help.", retrieval_top_k=1)
    agent.collections.add(knowledge)
    return agent


def chat(client, agent, **body):
    return client.post(f"/api/v1/agents/{agent.pk}/chat", body, format="json")


def test_the_best_chunks_go_into_the_prompt_and_the_answer_cites_them(tenant, agent, fake_openai):
    response = chat(tenant.client("write_key"), agent, message="How many days do I have to send an item back?")

    assert response.status_code == 200, response.json()
    sent = fake_openai.chat_requests()[0].body["messages"]
    assert sent[0] == {"role": "system", "content": "You help."}
    assert sent[1]["role"] == "system" and f"[1] Returns\n{RETURNS}" in sent[1]["content"]
    assert SHIPPING not in sent[1]["content"]  # retrieval_top_k = 1
    assert sent[-1] == {"role": "user", "content": "How many days do I have to send an item back?"}
    (citation,) = response.json()["citations"]
    returns = Document.objects.get(title="Returns")
    assert citation["index"] == 1 and citation["document"] == {"id": str(returns.pk), "title": "Returns"}
    assert citation["chunk_id"] == str(returns.chunks.get().pk) and citation["score"] > 0
    # The question's embedding is metered to the agent, like its chat call.
    embedding = UsageRecord.objects.filter(project=tenant.project, operation="embedding", agent_id=agent.pk)
    assert embedding.count() == 1 and embedding.get().api_key_id == tenant.write_key.pk


def test_the_model_can_search_itself_through_the_built_in_tool(tenant, agent, fake_openai):
    agent.auto_retrieval = False
    agent.save()
    fake_openai.script(ToolCalls([("knowledge_search", json.dumps({"query": "when do parcels ship"}))]), Reply("Soon."))

    response = chat(tenant.client("write_key"), agent, message="Where is my parcel?")

    assert response.status_code == 200, response.json()
    first, second = fake_openai.chat_requests()
    assert "knowledge_search" in [t["function"]["name"] for t in first.body["tools"]]
    assert all(m["role"] != "system" or m["content"] == "You help." for m in first.body["messages"])
    tool_message = second.body["messages"][-1]
    results = json.loads(tool_message["content"])["results"]
    assert results[0] == {"source": 1, "title": "Shipping", "text": SHIPPING}
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Soon."
    assert body["citations"][0]["document"]["title"] == "Shipping"
    assert body["tool_calls"][0]["name"] == "knowledge_search"


def test_a_bad_tool_call_gets_an_error_not_a_crash(tenant, agent, fake_openai):
    agent.auto_retrieval = False
    agent.save()
    fake_openai.script(ToolCalls([("knowledge_search", "not json")]), Reply("Sorry."))

    response = chat(tenant.client("write_key"), agent, message="Where is my parcel?")

    assert response.status_code == 200
    tool_message = fake_openai.chat_requests()[1].body["messages"][-1]
    assert "query" in json.loads(tool_message["content"])["error"]
    assert response.json()["citations"] == []


def test_the_stream_s_final_event_carries_the_citations(tenant, agent, fake_openai):
    response = stream_post(
        tenant.write_key.raw,
        f"/api/v1/agents/{agent.pk}/chat",
        {"message": "Can I get a refund?", "stream": True},
    )

    final = [block for block in response.sse_body.split("\n\n") if block.startswith("event: final")]
    assert final, response.sse_body
    data = json.loads(final[0].split("data: ", 1)[1])
    assert [c["document"]["title"] for c in data["citations"]] == ["Returns"]


def test_an_agent_without_collections_is_unchanged(tenant, agent, fake_openai):
    agent.collections.clear()
    response = chat(tenant.client("write_key"), agent, message="Hello")

    sent = fake_openai.chat_requests()[0].body
    assert [m["role"] for m in sent["messages"]] == ["system", "user"] and "tools" not in sent
    assert response.json()["citations"] == []


def test_an_agent_cannot_use_another_projects_collection(tenant, other_tenant, knowledge):
    theirs = CollectionFactory(project=other_tenant.project)
    client = tenant.client()

    created = client.post("/api/v1/agents/", {"name": "a", "collections": [str(theirs.pk)]}, format="json")
    assert created.status_code == 400 and "collections" in created.json()["error"]["details"]
    ok = client.post("/api/v1/agents/", {"name": "b", "collections": [str(knowledge.pk)]}, format="json")
    assert ok.status_code == 201 and ok.json()["collections"] == [str(knowledge.pk)]
    agent_id = ok.json()["id"]
    patched = client.patch(f"/api/v1/agents/{agent_id}", {"collections": [str(theirs.pk)]}, format="json")
    assert patched.status_code == 400
    assert list(Agent.objects.get(pk=agent_id).collections.all()) == [knowledge]
