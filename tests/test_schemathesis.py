"""Property-based run of the OpenAPI schema against the live app (schemathesis).

The schema is the one the app serves at ``/api/schema/``; every operation in it is called
in-process through the WSGI app with generated data (valid and invalid), as the admin API key of
a tenant and as its owner (JWT + ``X-Project-ID``). Every response must not be a 5xx, must have a
documented status code and content type, and its body must match the documented schema (the
error envelope for 4xx).

Each example runs inside a savepoint that is rolled back, so examples are independent: one may
delete the caller's key, project or membership, or change its password, without spoiling the
next. Detail routes get the id of a real object of the tenant about half the time (a random
UUID is a 404, which tests little).
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from projects.tenancy import PROJECT_HEADER
from tests.conftest import jwt_for, make_tenant
from tests.projects.factories import TeamFactory

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 15

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, with_security_parameters=False)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

_DETAIL = re.compile(r"^/api/v1/(?P<resource>[\w-]+)/\{id\}/")


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
def world(wsgi_db):
    tenant = make_tenant("Schemathesis")
    team = TeamFactory(project=tenant.project)
    ids = {
        "projects": [str(tenant.project.pk)],
        "members": [str(m.pk) for m in tenant.project.memberships.all()],
        "teams": [str(team.pk)],
        "api-keys": [str(k.pk) for k in (tenant.admin_key, tenant.write_key, tenant.read_key)],
    }
    return tenant, ids


def _run(case, data, ids, headers):
    match = _DETAIL.match(case.operation.path)
    if match and data.draw(st.booleans(), label="real object"):
        case.path_parameters["id"] = data.draw(st.sampled_from(ids[match["resource"]]), label="id")
    if case.headers:
        case.headers.pop(PROJECT_HEADER, None)
    with transaction.atomic():
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        finally:
            transaction.set_rollback(True)


@schema.given(data=st.data())
@schema.parametrize()
@HYPOTHESIS
def test_api_as_admin_key(case, data, world):
    tenant, ids = world
    _run(case, data, ids, {"Authorization": f"Bearer {tenant.admin_key.raw}"})


@schema.given(data=st.data())
@schema.parametrize()
@HYPOTHESIS
def test_api_as_owner_jwt(case, data, world):
    tenant, ids = world
    headers = {"Authorization": f"Bearer {jwt_for(tenant.owner)}", PROJECT_HEADER: str(tenant.project.pk)}
    _run(case, data, ids, headers)
