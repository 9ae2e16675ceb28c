"""The usage ledger: a known mix of calls gives exactly the expected rows and sums."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models import Sum

from agents.models import Agent, Provider, Tool, ToolBinding
from tests.conftest import stream_post
from tests.fake_openai import Fail, Reply, ToolCalls
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


@pytest.fixture
def order_service(settings):
    """A loopback HTTP service for the agent's tool (loopback is allowed for this test only)."""
    settings.TOOLS_ALLOW_PRIVATE_NETWORKS = True
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.path)
            body = json.dumps({"order": self.path.rsplit("/", 1)[-1], "status": "shipped"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_plain_streamed_failed_and_tool_round_calls_are_each_recorded_once(tenant, fake_openai, order_service):
    base, seen = order_service
    Provider.objects.create(
        project=tenant.project,
        name="up",
        base_url=fake_openai.base_url,
        default_chat_model="gpt-4o-mini",
        is_default=True,
    )
    agent = Agent.objects.create(project=tenant.project, name="orders", instructions="Look orders up.")
    tool = Tool.objects.create(
        project=tenant.project,
        name="get_order",
        url_template=base + "/orders/{order_id}",
        parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    )
    ToolBinding.objects.create(project=tenant.project, agent=agent, tool=tool)
    client = tenant.client("write_key")
    url = f"/api/v1/agents/{agent.pk}/chat"

    # 1 call: plain
    assert client.post(url, {"message": "hello"}, format="json").status_code == 200
    # 1 call: streamed
    fake_openai.script(Reply("streamed answer"))
    streamed = stream_post(
        tenant.write_key.raw,
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "s"}], "stream": True},
    )
    assert "streamed" in streamed.sse_body
    # 1 call: failed (401 is not retried)
    fake_openai.script(Fail(401))
    assert client.post(url, {"message": "fail"}, format="json").status_code == 502
    # 2 calls: a tool round, then the answer
    fake_openai.script(ToolCalls([("get_order", '{"order_id": "A-7"}')]), Reply("Order A-7 has shipped."))
    reply = client.post(url, {"message": "where is A-7?"}, format="json").json()

    assert reply["choices"][0]["message"]["content"] == "Order A-7 has shipped."
    assert reply["tool_calls"][0]["result"]["body"]["status"] == "shipped"
    assert seen == ["/orders/A-7"]
    tool_message = fake_openai.chat_requests()[-1].body["messages"][-1]
    assert tool_message["role"] == "tool" and "shipped" in tool_message["content"]

    rows = UsageRecord.objects.filter(project=tenant.project)
    assert rows.count() == 5
    assert rows.filter(status="succeeded").count() == 4 and rows.filter(status="failed").count() == 1
    assert rows.filter(operation="stream").count() == 1
    assert rows.filter(agent_id=agent.pk).count() == 4
    failed = rows.get(status="failed")
    assert (failed.total_tokens, failed.cost, failed.error_code) == (0, 0, "provider_auth_failed")
    # the reply's usage is the sum of its two calls
    tool_turn = rows.filter(agent_id=agent.pk, status="succeeded").order_by("-created_at")[:2]
    assert reply["usage"]["total_tokens"] == sum(r.total_tokens for r in tool_turn)
    totals = rows.aggregate(tokens=Sum("total_tokens"), cost=Sum("cost"))
    assert totals["tokens"] == sum(r.prompt_tokens + r.completion_tokens for r in rows)
    assert totals["cost"] == sum(
        (r.prompt_tokens * Decimal("0.15") + r.completion_tokens * Decimal("0.60")) / 1_000_000 for r in rows
    )
