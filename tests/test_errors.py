"""Bad input: always a 4xx in the one envelope, never a 500, and nothing written."""

from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.test import RequestFactory
from django.urls import reverse

from config.exceptions import handler500
from tests.test_isolation import OBJECT_FACTORIES, PROJECT_ROUTES

pytestmark = pytest.mark.django_db


def row_counts() -> dict[str, int]:
    return {
        m._meta.label: m.objects.count() for m in apps.get_models() if m._meta.app_label in ("accounts", "projects")
    }


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["request_id"] == response["X-Request-ID"]
    if code:
        assert body["error"]["code"] == code
    return body


WRITE_ROUTES = [
    pytest.param(name, cls, method, is_detail, id=f"{name}-{method}")
    for name, cls, actions, is_detail in PROJECT_ROUTES
    for method in ("post", "patch")
    if method in actions
    and method in cls.http_method_names
    and name != "apikey-revoke"  # an action without a body; tests/projects covers it
]


@pytest.mark.parametrize(("url_name", "view_class", "method", "is_detail"), WRITE_ROUTES)
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"name": ', 400, "malformed_request"),
        ("[1, 2, 3]", 400, "validation_error"),
        ('"just a string"', 400, "validation_error"),
        ('{"name": "x", "no_such_field": 1}', 400, "validation_error"),
        ('{"name": "x", "project": "00000000-0000-0000-0000-000000000000"}', 400, "validation_error"),
    ],
    ids=["malformed", "array", "string", "unknown-field", "project-field"],
)
def test_write_endpoints_refuse_bad_bodies_and_write_nothing(
    tenant, url_name, view_class, method, is_detail, body, status, code
):
    obj = OBJECT_FACTORIES[view_class](tenant)
    url = reverse(url_name, kwargs={"pk": obj.pk}) if is_detail else reverse(url_name)
    before = row_counts()

    response = getattr(tenant.client("owner"), method)(url, body, content_type="application/json")

    assert_envelope(response, status, code)
    assert row_counts() == before


def test_a_body_over_the_limit_is_413_and_nothing_is_written(tenant, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    before = row_counts()

    response = tenant.client("owner").post(
        "/api/v1/teams/", json.dumps({"name": "x", "description": "y" * 2000}), content_type="application/json"
    )

    assert_envelope(response, 413, "payload_too_large")
    assert row_counts() == before


def test_an_oversized_form_body_is_413(tenant, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = tenant.client("owner").post(
        "/api/v1/teams/", {"name": "x", "description": "y" * 2000}, format="multipart"
    )

    assert_envelope(response, 413, "payload_too_large")


def test_wrong_types_are_field_errors(tenant):
    response = tenant.client("owner").post(
        "/api/v1/api-keys/", {"name": ["not", "a", "string"], "scopes": "read"}, format="json"
    )

    body = assert_envelope(response, 400, "validation_error")
    assert set(body["error"]["details"]) == {"name", "scopes"}


def test_overlong_strings_are_refused(tenant):
    response = tenant.client("owner").post("/api/v1/teams/", {"name": "x" * 121}, format="json")

    assert "name" in assert_envelope(response, 400)["error"]["details"]


def test_an_unsupported_media_type_is_415(tenant):
    response = tenant.client("owner").post("/api/v1/teams/", "name=x", content_type="text/plain")

    assert_envelope(response, 415, "unsupported_media_type")


def test_malformed_ids_in_urls_are_404_not_500(tenant):
    assert_envelope(tenant.client("owner").get("/api/v1/teams/not-a-uuid/"), 404, "not_found")


def test_unknown_urls_and_methods_use_the_envelope(tenant, api_client):
    assert_envelope(api_client.get("/no/such/page"), 404, "not_found")
    assert_envelope(api_client.get("/api/v1/nothing-here/"), 404, "not_found")
    assert_envelope(tenant.client("owner").put("/api/v1/teams/", {}), 405, "method_not_allowed")


def test_unauthenticated_requests_are_401(api_client):
    assert_envelope(api_client.get("/api/v1/teams/"), 401, "not_authenticated")


def test_the_request_id_is_echoed_when_sane_and_generated_otherwise(tenant):
    client = tenant.client("owner")

    given = client.get("/api/v1/teams/", HTTP_X_REQUEST_ID="abc-123")
    hostile = client.get("/api/v1/teams/", HTTP_X_REQUEST_ID="x" * 500)
    error = client.get("/api/v1/teams/not-a-uuid/", HTTP_X_REQUEST_ID="trace-7")

    assert given["X-Request-ID"] == "abc-123"
    assert hostile["X-Request-ID"] != "x" * 500 and len(hostile["X-Request-ID"]) == 32
    assert error.json()["request_id"] == "trace-7"


def test_the_500_handler_answers_with_the_envelope():
    request = RequestFactory().get("/")
    request.id = "req-1"

    response = handler500(request)

    assert response.status_code == 500
    assert json.loads(response.content) == {
        "error": {"code": "server_error", "message": "Internal server error; it has been logged.", "details": {}},
        "request_id": "req-1",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/agents", "/api/v1/agents/", "/api/v1/collections", "/api/v1/collections/"])
def test_routes_answer_with_or_without_the_trailing_slash(tenant, path):
    assert tenant.client().get(path).status_code == 200


@pytest.mark.django_db
def test_detail_routes_answer_with_or_without_the_trailing_slash(tenant):
    from tests.agents.factories import AgentFactory

    agent = AgentFactory(project=tenant.project)
    for path in (f"/api/v1/agents/{agent.pk}", f"/api/v1/agents/{agent.pk}/"):
        assert tenant.client().get(path).json()["id"] == str(agent.pk)
