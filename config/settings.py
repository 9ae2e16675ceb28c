"""AgentDesk settings: one module, driven by the environment.

``DJANGO_ENV`` picks the behaviour: ``development`` (the default: readable logs, the ``dev``
API key), ``test`` (set by the test suite) or ``production`` (JSON logs, secure cookies and
HSTS; refuses to start with a default ``SECRET_KEY`` or ``DEBUG=True``). This is the only
module that reads ``os.environ``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import conninfo_to_dict

from config import embedded

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), not {value!r}")


def env_int(name: str, default: int) -> int:
    value = env(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


DJANGO_ENV = env("DJANGO_ENV", "development")
if DJANGO_ENV not in ("development", "test", "production"):
    raise ImproperlyConfigured("DJANGO_ENV must be development, test or production")
IS_PRODUCTION = DJANGO_ENV == "production"

# Placeholders that are fine on a laptop and refused in production.
_DEFAULT_SECRET_KEY = "django-insecure-agentdesk-development-key-do-not-use-in-production"
_DEFAULT_PEPPER = "agentdesk-development-api-key-pepper"
_DEFAULT_ENCRYPTION_KEY = "agentdesk-development-field-encryption-key"

SECRET_KEY = env("SECRET_KEY", _DEFAULT_SECRET_KEY)
# HMAC key for API-key digests. Separate from SECRET_KEY so rotating one does not void the other.
API_KEY_PEPPER = env("API_KEY_PEPPER", _DEFAULT_PEPPER)
DEBUG = env_bool("DEBUG", DJANGO_ENV == "development")
# Encrypts credentials stored in the database (provider API keys, tool headers). Comma-separated:
# the first encrypts, all decrypt, so prepend a new key to rotate.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", _DEFAULT_ENCRYPTION_KEY)

if IS_PRODUCTION:
    if SECRET_KEY == _DEFAULT_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("production needs SECRET_KEY set to a random 50+ char value")
    if API_KEY_PEPPER == _DEFAULT_PEPPER or len(API_KEY_PEPPER) < 32:
        raise ImproperlyConfigured("production needs API_KEY_PEPPER set to a random value")
    if _DEFAULT_ENCRYPTION_KEY in FIELD_ENCRYPTION_KEYS or min(map(len, FIELD_ENCRYPTION_KEYS)) < 32:
        raise ImproperlyConfigured("production needs FIELD_ENCRYPTION_KEYS set to random 32+ char values")
    if DEBUG:
        raise ImproperlyConfigured("production refuses to start with DEBUG=True")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if IS_PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "accounts",
    "projects",
    "agents",
    "knowledge",
    "visitors",
    "usage",
    "billing",
]

# Under ASGI, config.asgi swaps some of these for equivalents that keep API requests off
# threads (config.middleware.asgi_middleware); the list stays Django's own for WSGI and checks.
MIDDLEWARE = [
    "config.middleware.RequestIDMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.StaticFilesMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# API routes accept paths with and without the trailing slash (a redirect would drop a POST body).
APPEND_SLASH = False
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data services: configured servers, or the embedded ones (config/embedded.py) ---------

DATA_DIR = Path(env("AGENTDESK_DATA_DIR", str(BASE_DIR / ".data")))

DATABASE_URL = env("DATABASE_URL") or embedded.postgres_url(DATA_DIR)
_db = conninfo_to_dict(DATABASE_URL)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.pop("dbname", "agentdesk"),
        "USER": _db.pop("user", ""),
        "PASSWORD": _db.pop("password", ""),
        "HOST": _db.pop("host", ""),
        "PORT": _db.pop("port", ""),
        # Whatever else the URL carries (sslmode, ...) goes to psycopg as is.
        "OPTIONS": {
            **_db,
            # psycopg's pool: a fresh connection per request was 2.5x slower on the hot path.
            **(
                {"pool": {"min_size": 1, "max_size": env_int("DATABASE_POOL_MAX", 10), "timeout": 10}}
                if env_bool("DATABASE_POOL", True)
                else {}
            ),
        },
        "TEST": {"NAME": env("DATABASE_TEST_NAME", None)},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL") or embedded.valkey_url(DATA_DIR)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "agentdesk"),
        "TIMEOUT": 300,
    }
}

# --- Celery -------------------------------------------------------------------------------

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 14 * 60)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacknowledged task after this long; longer than any task may run.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 60}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Every other task (document parsing, beat jobs) goes to the default queue.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Model calls (agent runs, embeddings) have a queue of their own, so they cannot starve other tasks.
CELERY_LLM_QUEUE = env("CELERY_LLM_QUEUE", "llm")
CELERY_TASK_ROUTES = {
    "agents.run_execute": {"queue": CELERY_LLM_QUEUE},
    "knowledge.document_embed": {"queue": CELERY_LLM_QUEUE},
}
CELERY_BEAT_SCHEDULE: dict = {
    # Fail runs whose worker vanished (no heartbeat) and queued runs no worker took.
    "agents-runs-reap-stale": {"task": "agents.runs_reap_stale", "schedule": 60.0},
    # Queue again documents whose ingestion job was lost.
    "knowledge-documents-resume-stale": {"task": "knowledge.documents_resume_stale", "schedule": 300.0},
}
CELERY_TIMEZONE = "UTC"
# Let Django's LOGGING (structlog) format worker logs too, instead of Celery's own handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth ---------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if DJANGO_ENV == "test":
    # Hashing dominates a suite that logs users in; the algorithm is not under test.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "SIGNING_KEY": env("JWT_SIGNING_KEY", SECRET_KEY),
}

# API keys: verified keys are cached in process this long; a revoked key stops working within it.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 5)
# last_used_at is written at most this often per key.
API_KEY_TOUCH_SECONDS = 60
# Agents, default providers and tool bindings used by model calls are cached this long in process.
ROUTING_CACHE_SECONDS = env_int("ROUTING_CACHE_SECONDS", 5)
# The literal key "dev" authenticates as the seeded project only here.
DEV_API_KEY_ENABLED = DJANGO_ENV == "development"

# --- Model gateway (agents/providers) -------------------------------------------------------

# The deployment's default provider, for projects that configure none: an OpenAI-compatible
# endpoint when OPENAI_API_KEY or OPENAI_BASE_URL is set, else the local offline models.
OPENAI_API_KEY = env("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", "")
OPENAI_ORGANIZATION = env("OPENAI_ORGANIZATION", "")
DEFAULT_CHAT_MODEL = env("DEFAULT_CHAT_MODEL", "gpt-4o-mini" if (OPENAI_API_KEY or OPENAI_BASE_URL) else "smollm2")
DEFAULT_EMBEDDING_MODEL = env(
    "DEFAULT_EMBEDDING_MODEL",
    "text-embedding-3-small" if (OPENAI_API_KEY or OPENAI_BASE_URL) else "all-minilm-l6-v2",
)
# The SDK's HTTP client for model calls: "aiohttp" (faster) or "httpx" (honours HTTP(S)_PROXY).
PROVIDER_HTTP_CLIENT = env("PROVIDER_HTTP_CLIENT", "aiohttp")
if PROVIDER_HTTP_CLIENT not in ("aiohttp", "httpx"):
    raise ImproperlyConfigured("PROVIDER_HTTP_CLIENT must be 'aiohttp' or 'httpx'.")
PROVIDER_TIMEOUT_SECONDS = float(env("PROVIDER_TIMEOUT_SECONDS", "60"))
PROVIDER_MAX_RETRIES = env_int("PROVIDER_MAX_RETRIES", 2)
PROVIDER_RETRY_BASE_SECONDS = float(env("PROVIDER_RETRY_BASE_SECONDS", "0.5"))
PROVIDER_RETRY_MAX_SECONDS = float(env("PROVIDER_RETRY_MAX_SECONDS", "8"))
# A Retry-After longer than this is not waited out: the caller gets the 429 at once.
PROVIDER_MAX_RETRY_AFTER = float(env("PROVIDER_MAX_RETRY_AFTER", "20"))
# The local chat model (llama.cpp): another GGUF instead of SmolLM2, context, threads (0: cores
# less one), and the answer length when a request gives none.
LOCAL_CHAT_MODEL_PATH = env("LOCAL_CHAT_MODEL_PATH", "")
LOCAL_CHAT_CONTEXT_TOKENS = env_int("LOCAL_CHAT_CONTEXT_TOKENS", 2048)
LOCAL_CHAT_THREADS = env_int("LOCAL_CHAT_THREADS", 0)
LOCAL_CHAT_MAX_TOKENS = env_int("LOCAL_CHAT_MAX_TOKENS", 256)
# The local embedding model (sentence-transformers): another model directory instead of
# all-MiniLM-L6-v2, the encode batch, and torch's threads (0: torch's choice).
LOCAL_EMBEDDING_MODEL_PATH = env("LOCAL_EMBEDDING_MODEL_PATH", "")
LOCAL_EMBEDDING_BATCH_SIZE = env_int("LOCAL_EMBEDDING_BATCH_SIZE", 64)
LOCAL_EMBEDDING_THREADS = env_int("LOCAL_EMBEDDING_THREADS", 0)
# Knowledge bases: the largest document accepted (uploads past it are refused with 413), and
# chunks embedded per model call.
KNOWLEDGE_MAX_DOCUMENT_BYTES = env_int("KNOWLEDGE_MAX_DOCUMENT_BYTES", 20 * 1024 * 1024)
KNOWLEDGE_EMBEDDING_BATCH_SIZE = env_int("KNOWLEDGE_EMBEDDING_BATCH_SIZE", 64)
# Candidates an HNSW search keeps per step (pgvector's hnsw.ef_search; its default is 40): more
# finds more of the true nearest, slower. Filtered searches drop most candidates, so keep more.
KNOWLEDGE_EF_SEARCH = env_int("KNOWLEDGE_EF_SEARCH", 100)
KNOWLEDGE_EF_SEARCH_FILTERED = env_int("KNOWLEDGE_EF_SEARCH_FILTERED", 400)
# PostgreSQL's maintenance_work_mem while a collection's HNSW index is built.
KNOWLEDGE_INDEX_BUILD_MEMORY = env("KNOWLEDGE_INDEX_BUILD_MEMORY", "512MB")
# Tools may call private, loopback and link-local addresses only when this is on.
TOOLS_ALLOW_PRIVATE_NETWORKS = env_bool("TOOLS_ALLOW_PRIVATE_NETWORKS", False)

INVITATION_DAYS = env_int("INVITATION_DAYS", 7)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "AgentDesk <noreply@agentdesk.local>")
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if IS_PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Where invitation links point (the front end that calls /api/v1/auth/register).
FRONTEND_URL = env("FRONTEND_URL", "http://localhost:8000")

# --- REST API -----------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "projects.authentication.APIKeyAuthentication",
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "config.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env("THROTTLE_AUTH", "20/min"),
    },
    "NUM_PROXIES": env_int("NUM_PROXIES", 0) if env("NUM_PROXIES") else None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Request bodies past this are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 2 * 1024 * 1024)

SPECTACULAR_SETTINGS = {
    "TITLE": "AgentDesk API",
    "DESCRIPTION": (
        "Multi-tenant platform API for AI agents that serve customers.\n\n"
        "Authenticate as staff with a JWT (`POST /api/v1/auth/login`) and choose the project with "
        "the `X-Project-ID` header, or as a program with a project API key "
        "(`Authorization: Bearer ak_...` or `X-API-Key: ak_...`), which implies its project.\n\n"
        'Every error has the shape `{"error": {"code", "message", "details"}, "request_id"}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "displayRequestDuration": True},
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "projects.models.Role",
        "SearchModeEnum": "knowledge.models.SearchMode",
    },
    "SCHEMA_PATH_PREFIX": r"/api/v1",
}

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_ALL_ORIGINS = env_bool("CORS_ALLOW_ALL_ORIGINS", False)
from corsheaders.defaults import default_headers  # noqa: E402

CORS_ALLOW_HEADERS = (*default_headers, "x-project-id", "x-api-key", "x-request-id")
CORS_EXPOSE_HEADERS = ["X-Request-ID"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# collectstatic's target, for production images; elsewhere whitenoise serves files straight from
# the apps (WHITENOISE_USE_FINDERS), so no collectstatic step is needed.
STATIC_ROOT = env("STATIC_ROOT", str(BASE_DIR / "staticfiles") if IS_PRODUCTION else None)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security (production) ----------------------------------------------------------------

if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Logging: JSON lines in production, readable lines elsewhere --------------------------

LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = env("LOG_FORMAT", "json" if IS_PRODUCTION else "console")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": "config.logging.formatter",
            "fmt": LOG_FORMAT,
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "structured"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # 4xx are part of the API; the request log line already records them.
        "django.request": {"level": "ERROR"},
        "django.db.backends": {"level": "INFO"},
        "pgserver": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
