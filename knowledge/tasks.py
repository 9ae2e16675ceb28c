"""Celery tasks of the knowledge app. Thin: they take ids and call :mod:`knowledge.services`.

Parsing runs on the default queue; embedding, which runs a model, on the LLM queue
(``CELERY_TASK_ROUTES``). Both are acknowledged late and redelivered when their worker is lost;
both are safe to run twice (see the services' docstring).
"""

from __future__ import annotations

import random

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from knowledge import services

MAX_RETRIES = 4


@shared_task(
    name="knowledge.document_parse",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=300,
    time_limit=330,
    ignore_result=True,
)
def document_parse(document_id: str) -> str:
    return services.document_parse(document_id)


@shared_task(
    name="knowledge.document_embed",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=780,
    time_limit=840,
    max_retries=MAX_RETRIES,
    ignore_result=True,
)
def document_embed(self, document_id: str) -> str:
    """Retryable provider failures (429, 5xx, timeouts) are retried with backoff, resuming at
    the first chunk without a vector; the last failure fails the document. A document too big
    for one task's time limit goes on in the next."""
    from agents.providers.base import ProviderError

    try:
        return services.document_embed(document_id)
    except SoftTimeLimitExceeded as exc:
        raise self.retry(countdown=0, max_retries=None) from exc
    except ProviderError as exc:
        if self.request.retries >= self.max_retries:
            services.document_fail(document_id, exc.code, exc.message)
            return "failed"
        countdown = getattr(exc, "retry_after", None) or 2 * 2**self.request.retries + random.uniform(0, 1)  # noqa: S311
        raise self.retry(countdown=countdown) from exc


@shared_task(name="knowledge.documents_resume_stale", ignore_result=True)
def documents_resume_stale() -> int:
    """Beat, every five minutes: queue again documents whose job was lost."""
    return services.documents_resume_stale()
