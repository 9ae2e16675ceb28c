"""Operations: probes, production settings, Celery, logging, CORS, the dev seed."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from django.core.management import call_command

from accounts.models import User
from projects.models import APIKey

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "API_KEY_PEPPER": secrets.token_urlsafe(32),
    "FIELD_ENCRYPTION_KEYS": secrets.token_urlsafe(32),
    "ALLOWED_HOSTS": "api.example.com",
    # Named servers, so that the embedded ones are not started; nothing connects to them here.
    "DATABASE_URL": "postgresql://agentdesk@127.0.0.1:1/agentdesk",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def run_django(code: str, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ENV", "DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", f"import os, django; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; {code}"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_healthz_answers_without_auth(client):
    response = client.get("/healthz")

    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_cache_and_broker(client):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    assert {name: c["status"] for name, c in response.json()["checks"].items()} == {
        "database": "ok",
        "cache": "ok",
        "broker": "ok",
    }


@pytest.mark.django_db
def test_readyz_is_503_and_names_the_failing_check(client, settings, monkeypatch):
    from config.celery import app

    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead}}
    monkeypatch.setattr(app.conf, "broker_url", dead)

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["cache"]["status"] == "error" and checks["broker"]["status"] == "error"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "ab" * 40}, "SECRET_KEY"),
        ({"API_KEY_PEPPER": ""}, "API_KEY_PEPPER"),
        ({"FIELD_ENCRYPTION_KEYS": ""}, "FIELD_ENCRYPTION_KEYS"),
        ({"DEBUG": "true"}, "DEBUG"),
    ],
    ids=["default-secret", "short-secret", "repetitive-secret", "default-pepper", "default-encryption-key", "debug"],
)
def test_production_refuses_to_start_with_unsafe_settings(override, message):
    result = run_django("django.setup()", **{**PRODUCTION_ENV, **override})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_check_deploy_is_clean_under_production_settings():
    result = run_django(
        "from django.core.management import call_command; django.setup(); "
        "call_command('check', '--deploy', '--fail-level', 'WARNING')",
        **PRODUCTION_ENV,
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_settings_refuse_a_malformed_boolean():
    result = run_django("django.setup()", **{**PRODUCTION_ENV, "DEBUG": "maybe"})

    assert result.returncode != 0 and "DEBUG must be a boolean" in result.stderr


def test_a_real_worker_runs_tasks_from_the_broker():
    from celery.contrib.testing.worker import start_worker

    from config.celery import app, ping

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert ping.delay().get(timeout=20) == "pong"


def test_json_logs_carry_the_request_id():
    from config.logging import formatter

    record = logging.LogRecord("agentdesk.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    structlog.contextvars.bind_contextvars(request_id="req-42")
    try:
        line = formatter("json").format(record)
    finally:
        structlog.contextvars.clear_contextvars()

    payload = json.loads(line)
    assert payload["event"] == "hello world"
    assert payload["request_id"] == "req-42" and payload["level"] == "info"


def test_cors_allows_only_configured_origins(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET"}

    allowed = client.options("/api/v1/teams/", HTTP_ORIGIN="https://app.example.com", **preflight)
    refused = client.options("/api/v1/teams/", HTTP_ORIGIN="https://evil.example.com", **preflight)

    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "x-project-id" in allowed["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in refused


@pytest.mark.django_db
def test_seed_dev_is_idempotent_and_makes_the_dev_key(settings, client):
    settings.DEV_API_KEY_ENABLED = True

    call_command("seed_dev")
    call_command("seed_dev")

    assert User.objects.filter(email="dev@agentdesk.local").count() == 1
    assert APIKey.objects.filter(prefix="dev").count() == 1
    response = client.get("/api/v1/projects/", HTTP_AUTHORIZATION="Bearer dev")
    assert [p["name"] for p in response.json()["results"]] == ["Development"]
