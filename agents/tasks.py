"""Celery tasks of the agents app. Thin: they take ids and call :mod:`agents.runs`.

``agents.run_execute`` goes to the LLM queue (``settings.CELERY_LLM_QUEUE``, routed by
``CELERY_TASK_ROUTES``); workers consume it with ``-Q celery,llm``. It is acknowledged late and
rejected (so redelivered) when its worker process is lost; running it twice is safe, since the
service claims the run with a conditional UPDATE.
"""

from __future__ import annotations

import random

from celery import shared_task
from django.conf import settings

from agents import runs

# Below the hard limit, so the service can still record the timeout; above the run's own
# timeout (runs.RUN_TIMEOUT_SECONDS), which normally ends an attempt first.
SOFT_TIME_LIMIT = 600
TIME_LIMIT = 660
MAX_RETRIES = 3


@shared_task(
    name="agents.run_execute",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
    max_retries=MAX_RETRIES,
    ignore_result=True,
)
def run_execute(self, run_id: str) -> str:
    """Execute a run. Retries: a retryable provider failure (the run was queued again), and a
    redelivery that found the run still held by a worker that may have died (look again once
    its heartbeat could be stale, then take it over)."""
    may_retry = self.request.retries < self.max_retries
    outcome = runs.run_execute(run_id, may_retry=may_retry)
    if outcome is runs.Outcome.RETRY:
        countdown = 5 * 2**self.request.retries + random.uniform(0, 2)  # noqa: S311 - jitter
        raise self.retry(countdown=countdown, queue=settings.CELERY_LLM_QUEUE)
    if outcome is runs.Outcome.BUSY and may_retry:
        raise self.retry(countdown=runs.TAKEOVER_AFTER_SECONDS + 5, queue=settings.CELERY_LLM_QUEUE)
    return outcome.value


@shared_task(name="agents.runs_reap_stale", ignore_result=True)
def runs_reap_stale() -> dict[str, int]:
    """Beat, every minute: fail runs whose worker vanished and queued runs nobody took."""
    return runs.runs_reap_stale()
