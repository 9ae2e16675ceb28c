"""The ASGI application as production runs it: the rearranged middleware chain (config.asgi)
must still give the admin its sessions, CSRF protection, login and messages, and the API its
headers."""

from __future__ import annotations

import re

import httpx2
import pytest

from accounts.models import User
from config.middleware import asgi_middleware
from tests.conftest import run_async

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_test_connection")]


def client():
    from config.asgi import application

    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=application), base_url="http://testserver")


def test_the_admin_logs_in_through_the_asgi_chain():
    User.objects.create_superuser("boss@example.com", "a strong passphrase 1")

    async def scenario():
        async with client() as c:
            page = await c.get("/admin/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            refused = await c.post(
                "/admin/login/", data={"username": "boss@example.com", "password": "a strong passphrase 1"}
            )
            login = await c.post(
                "/admin/login/",
                data={
                    "username": "boss@example.com",
                    "password": "a strong passphrase 1",
                    "csrfmiddlewaretoken": token,
                },
            )
            home = await c.get("/admin/")
            return page, refused, login, home

    page, refused, login, home = run_async(scenario)

    assert page.status_code == 200 and "csrftoken" in page.cookies
    assert page.headers["x-frame-options"] == "DENY"
    assert refused.status_code == 403  # CSRF still guards the site
    assert login.status_code == 302 and "sessionid" in login.cookies
    assert home.status_code == 200 and "boss@example.com" in home.text


def test_api_responses_keep_their_headers_and_set_no_cookies(tenant):
    async def scenario():
        async with client() as c:
            return await c.get("/api/v1/teams/", headers={"Authorization": f"Bearer {tenant.read_key.raw}"})

    response = run_async(scenario)

    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "set-cookie" not in response.headers and "cookie" not in response.headers.get("vary", "").lower()


def test_the_asgi_chain_replaces_only_what_it_knows():
    from django.conf import settings

    chain = asgi_middleware(settings.MIDDLEWARE)

    assert "config.middleware.SiteMiddleware" in chain
    assert not any(m.startswith("django.contrib.sessions") or m.endswith("CsrfViewMiddleware") for m in chain)
    assert chain.index("config.middleware.SiteMiddleware") < chain.index("config.middleware.XFrameOptionsMiddleware")
    assert asgi_middleware(["a.B", "c.D"]) == ["a.B", "c.D"]


def test_the_chat_completions_route_keeps_the_request_id_headers_and_error_shape(tenant):
    async def scenario():
        async with client() as c:
            return await c.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": []},
                headers={"Authorization": f"Bearer {tenant.write_key.raw}", "X-Request-ID": "req-hot-1"},
            )

    response = run_async(scenario)

    assert response.status_code == 400
    assert response.headers["x-request-id"] == "req-hot-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["request_id"] == "req-hot-1"
