"""Settings for the test suite: the normal settings with DJANGO_ENV=test.

Tests use the same real servers as development (DATABASE_URL / REDIS_URL, or the embedded
ones), on a separate database (``test_<name>``), cache prefix and Celery queue.
"""

import os
from pathlib import Path

# Before config.settings reads them. The embedded servers of the tests live apart from those of
# `make run`, so the suite can start and stop its own without touching a running platform.
os.environ["DJANGO_ENV"] = "test"
os.environ.setdefault("CELERY_LLM_QUEUE", "agentdesk-test-llm")  # apart from a dev worker
os.environ.setdefault("AGENTDESK_DATA_DIR", str(Path(__file__).resolve().parent.parent / ".data" / "test"))

from config.settings import *  # noqa: F403
from config.settings import CACHES

CACHES["default"]["KEY_PREFIX"] = "agentdesk-test"
CELERY_TASK_DEFAULT_QUEUE = "agentdesk-test"
API_KEY_CACHE_SECONDS = 0  # tests that exercise the cache turn it on themselves
ROUTING_CACHE_SECONDS = 0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
