"""The in-process routing cache of the model-call hot path, and the ASGI plumbing around it."""

from __future__ import annotations

import asyncio

import pytest

from agents import selectors
from agents.models import Agent, Provider
from tests.conftest import run_async

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached(settings):
    settings.ROUTING_CACHE_SECONDS = 5
    selectors._cache.clear()
    yield
    selectors._cache.clear()


def test_a_write_in_this_process_is_seen_at_once(tenant, cached):
    agent = Agent.objects.create(project=tenant.project, name="support")
    assert run_async(selectors.aactive_agent_by_name, tenant.project.pk, "support") == agent

    agent.is_active = False
    agent.save()

    assert run_async(selectors.aactive_agent_by_name, tenant.project.pk, "support") is None


def test_a_write_elsewhere_is_seen_within_the_bound(tenant, cached, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(selectors.time, "monotonic", lambda: clock[0])
    provider = Provider.objects.create(project=tenant.project, name="a", is_default=True)
    assert run_async(selectors.adefault_provider, tenant.project.pk) == provider

    Provider.objects.filter(pk=provider.pk).update(is_default=False)  # no signal: another process
    clock[0] += 4.9
    within = run_async(selectors.adefault_provider, tenant.project.pk)
    clock[0] += 0.2
    after = run_async(selectors.adefault_provider, tenant.project.pk)

    assert within == provider and after is None


def test_projects_do_not_share_entries(tenant, other_tenant, cached):
    ours = Agent.objects.create(project=tenant.project, name="same-name")
    theirs = Agent.objects.create(project=other_tenant.project, name="same-name")

    assert run_async(selectors.aactive_agent_by_name, tenant.project.pk, "same-name") == ours
    assert run_async(selectors.aactive_agent_by_name, other_tenant.project.pk, "same-name") == theirs


@pytest.mark.django_db(transaction=True)
def test_the_asgi_handler_reuses_its_request_threads():
    from config.asgi import application

    def scope(path):
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1), "server": ("testserver", 80),
        }  # fmt: skip

    async def get(path):
        sent = []
        received = []

        async def receive():
            if not received:
                received.append(True)
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client stays connected

        async def send(message):
            sent.append(message)

        await application(scope(path), receive, send)
        return sent[0]["status"]

    async def scenario():
        first = await get("/readyz")
        idle = list(application._idle)
        second = await get("/static/admin/css/base.css")
        return first, second, idle, list(application._idle)

    application._idle.clear()
    first, second, idle_after_one, idle_after_two = asyncio.run(scenario())

    assert (first, second) == (200, 200)  # the database is reached from the pooled thread; static served
    assert len(idle_after_one) == 1 and idle_after_two == idle_after_one  # the same executor, reused
