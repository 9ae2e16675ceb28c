"""The Celery app. Workers: ``celery -A config worker``; beat: ``celery -A config beat``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("agentdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="agentdesk.ping")
def ping() -> str:
    """Round trip through the broker; used by operators and the tests to prove a worker runs."""
    return "pong"
