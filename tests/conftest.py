"""Shared fixtures. Tests run against the real servers the settings name (DATABASE_URL /
REDIS_URL, or the embedded PostgreSQL + pgvector and Valkey, started on demand)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from projects.models import Role
from tests.accounts.factories import UserFactory
from tests.projects.factories import APIKeyFactory, MembershipFactory, ProjectFactory


def pytest_unconfigure(config):
    from django.db import connections

    from config import embedded

    connections.close_all()
    embedded.stop_started_here(settings.DATA_DIR)


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (throttle counters, ...). Deletes only the test
    prefix's keys: the Redis may be shared, and FLUSHDB would wipe more than ours."""
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)
    keys = list(client.scan_iter(match=f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000))
    if keys:
        client.delete(*keys)
    yield


def jwt_for(user) -> str:
    return str(RefreshToken.for_user(user).access_token)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def user_client(user, project=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt_for(user)}")
    if project is not None:
        client.defaults["HTTP_X_PROJECT_ID"] = str(project.pk)
    return client


def key_client(raw: str, header: str = "bearer") -> APIClient:
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    else:
        client.credentials(HTTP_X_API_KEY=raw)
    return client


@dataclass
class Tenant:
    """A project with an owner, a member, a viewer and keys of each scope (the alice/bob of it)."""

    project: object
    owner: object
    member: object
    viewer: object
    admin_key: object
    write_key: object
    read_key: object

    def client(self, who: str = "owner") -> APIClient:
        if who.endswith("_key"):
            return key_client(getattr(self, who).raw)
        return user_client(getattr(self, who), self.project)


def make_tenant(name: str) -> Tenant:
    owner = UserFactory()
    project = ProjectFactory(name=name, owner=owner)
    member = MembershipFactory(project=project, role=Role.MEMBER).user
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    return Tenant(
        project=project,
        owner=owner,
        member=member,
        viewer=viewer,
        admin_key=APIKeyFactory(project=project, scopes=["read", "write", "admin"]),
        write_key=APIKeyFactory(project=project, scopes=["read", "write"]),
        read_key=APIKeyFactory(project=project, scopes=["read"]),
    )


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant("Alpha")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return make_tenant("Bravo")


@pytest.fixture
def fake_openai():
    """A loopback OpenAI-compatible server (tests/fake_openai.py); scripted per test."""
    from tests.fake_openai import start_fake_openai

    server = start_fake_openai()
    yield server
    server.close()


@pytest.fixture
def celery_worker():
    """A real Celery worker (a thread of this process) consuming the test queues of the real
    broker. Tests that use it need committed data: ``django_db(transaction=True)``."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queues = [settings.CELERY_LLM_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE]
    with app.connection_for_write() as connection:  # leftovers of an interrupted session
        for queue in queues:
            connection.default_channel.queue_purge(queue)
    with start_worker(app, pool="solo", queues=queues, perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


@pytest.fixture
def fast_retries(settings):
    """Provider retries without real waiting (backoff in milliseconds)."""
    settings.PROVIDER_RETRY_BASE_SECONDS = 0.001
    settings.PROVIDER_RETRY_MAX_SECONDS = 0.002


@pytest.fixture
def keep_test_connection():
    """Requests served through the real ASGI/WSGI handler (not Django's test client) would close
    the test's database connection, and its transaction, at their start and end; the test
    client avoids that the same way."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def wait_for(predicate, timeout: float = 15.0, what: str = "the condition"):
    """Poll ``predicate`` (what a worker or a server thread will do) until it is truthy."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_async(fn, *args, **kwargs):
    """Run a coroutine function from a sync test. ORM calls inside (sync_to_async) come back to
    this thread, so they see the test's transaction."""
    from asgiref.sync import async_to_sync

    return async_to_sync(fn)(*args, **kwargs)


def stream_post(raw_key: str, path: str, body: dict):
    """POST through the ASGI handler and read the whole stream in the same event loop, as a
    server would (the sync test client would consume the stream in another loop)."""
    from django.test import AsyncClient

    async def go():
        response = await AsyncClient().post(
            path, body, content_type="application/json", headers={"Authorization": f"Bearer {raw_key}"}
        )
        assert response.streaming, response.content
        response.sse_body = b"".join([chunk async for chunk in response.streaming_content]).decode()
        # The test client closed the response on this loop, which hands the deferred usage rows
        # to a thread (a server closes it on a thread); wait for them as a server's close would.
        from usage.services import ledger_drain

        await ledger_drain()
        return response

    return run_async(go)
