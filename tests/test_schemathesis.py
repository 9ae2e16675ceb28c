"""Property-based run of the OpenAPI schema against the live app (schemathesis).

The schema is the one the app serves at ``/api/schema/``; every operation in it is called
in-process through the WSGI app with generated data (valid and invalid), as the admin API key of
a tenant and as its owner (JWT + ``X-Project-ID``). Every response must not be a 5xx, must have a
documented status code and content type, and its body must match the documented schema (the
error envelope for 4xx).

Each example runs inside a savepoint that is rolled back, so examples are independent: one may
delete the caller's key, project or membership, or change its password, without spoiling the
next. Detail routes get the id of a real object of the tenant about half the time (a random
UUID is a 404, which tests little). Nothing is excluded.

Deterministic (``derandomize``): a failure reproduces on the next run; the report ends with a
``curl`` line. Schemathesis runs its coverage phase (boundary and invalid values, other methods)
and then ``MAX_EXAMPLES`` fuzzed examples per operation.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.throttling import ScopedRateThrottle
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agents.models import Agent, Provider, Tool, ToolBinding
from config.wsgi import application
from knowledge import fetch
from knowledge.models import Document
from knowledge.services import collection_create
from projects.models import Membership
from projects.tenancy import PROJECT_HEADER
from tests.conftest import jwt_for, make_tenant
from tests.knowledge.factories import DocumentFactory
from tests.projects.factories import TeamFactory

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 20

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, with_security_parameters=False)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # ``world`` is function-scoped on purpose: each example rolls its writes back (see ``_run``).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)

_DETAIL = re.compile(r"^/api/v1/(?P<resource>[\w-]+)/\{id\}/")
# resource (URL segment) -> ids of the tenant's real objects; filled by the ``world`` fixture (add
# new resources there), read at draw time
_REAL_IDS: dict[str, list[str]] = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, point a detail route at a real object of the tenant."""
    match = _DETAIL.match(context.operation.path)
    if match is None or "id" not in path_parameters:
        return st.just(path_parameters)
    resource = match["resource"]
    real = st.integers(0, 9).map(lambda i: {**path_parameters, "id": _pick(resource, i, path_parameters["id"])})
    return st.one_of(st.just(path_parameters), real)


def _pick(resource: str, i: int, generated):
    ids = _REAL_IDS.get(resource)  # a resource ``world`` does not know keeps the generated id
    return ids[i % len(ids)] if ids else generated


@pytest.fixture
def wsgi_db(db):
    """Like Django's test client: keep the request cycle from closing the test's connection
    (it is inside the test transaction, so Django would think it is broken and drop it)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(wsgi_db, monkeypatch, fake_openai, fast_retries):
    # The "auth" throttle (20/min per IP) would answer most register/login/refresh examples with
    # 429 and leave their logic untested; tests/accounts/test_auth.py covers the throttle itself.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "auth": None})
    tenant = make_tenant("Schemathesis")
    team = TeamFactory(project=tenant.project)
    # Model calls go to the loopback fake, never to the (slow) local model.
    provider = Provider.objects.create(
        project=tenant.project,
        name="fake",
        base_url=fake_openai.base_url,
        default_chat_model="gpt-4o-mini",
        default_embedding_model="text-embedding-3-small",
        is_default=True,
    )
    agent = Agent.objects.create(project=tenant.project, name="schemathesis-agent", instructions="Answer.")
    # Embedded by the fake too (the collection takes the default provider). Generated URLs to
    # ingest meet a stand-in resolver that answers loopback for every name, which the fetch
    # guard refuses: no lookup or connection leaves this machine.
    collection = collection_create(project=tenant.project, name="schemathesis-docs")
    document = DocumentFactory(collection=collection, status=Document.Status.FAILED)

    async def loopback_resolver(host, port):
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(fetch, "_resolve", loopback_resolver)
    tool = Tool.objects.create(
        project=tenant.project,
        name="lookup",
        url_template="https://api.example.com/items/{item}",
        parameters={"type": "object", "properties": {"item": {"type": "string"}}},
    )
    binding = ToolBinding.objects.create(project=tenant.project, agent=agent, tool=tool)
    _REAL_IDS.update(
        {
            "projects": [str(tenant.project.pk)],
            "members": [str(m.pk) for m in Membership.objects.filter(project=tenant.project).order_by("created_at")],
            "teams": [str(team.pk)],
            "api-keys": [str(k.pk) for k in (tenant.admin_key, tenant.write_key, tenant.read_key)],
            "providers": [str(provider.pk)],
            "agents": [str(agent.pk)],
            "tools": [str(tool.pk)],
            "tool-bindings": [str(binding.pk)],
            "collections": [str(collection.pk)],
            "documents": [str(document.pk)],
            # not "runs": the events stream of a run no worker executes stays open until its cap
        }
    )
    yield tenant
    _REAL_IDS.clear()


def _run(case, headers):
    # The project comes from the key (admin-key run) or from our header (JWT run); a random
    # generated X-Project-ID would make nearly every example a 404.
    if case.headers:
        case.headers.pop(PROJECT_HEADER, None)
    with transaction.atomic():
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        finally:
            transaction.set_rollback(True)


@schema.parametrize()
@HYPOTHESIS
def test_api_as_admin_key(case, world):
    _run(case, {"Authorization": f"Bearer {world.admin_key.raw}"})


@pytest.fixture
def owner_headers(world):
    return {"Authorization": f"Bearer {jwt_for(world.owner)}", PROJECT_HEADER: str(world.project.pk)}


@schema.parametrize()
@HYPOTHESIS
def test_api_as_owner_jwt(case, owner_headers):
    _run(case, owner_headers)
