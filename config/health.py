"""Liveness and readiness probes, outside the API's auth and schema."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """The process is up and serving; checks nothing else."""
    return JsonResponse({"status": "ok"})


def _check(fn) -> dict:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # a probe reports failures, it does not raise them
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    cache.get("readyz")


def _broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@require_GET
def readyz(request):
    """Database, cache and broker reachable; 503 with per-check status when one is not."""
    checks = {"database": _check(_database), "cache": _check(_cache), "broker": _check(_broker)}
    ok = all(c["status"] == "ok" for c in checks.values())
    body = {"status": "ok" if ok else "error", "checks": checks, "environment": settings.DJANGO_ENV}
    return JsonResponse(body, status=200 if ok else 503)
