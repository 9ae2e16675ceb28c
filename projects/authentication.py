"""Project API-key authentication.

Accepted as ``Authorization: Bearer ak_…`` or ``X-API-Key: ak_…``. A bearer token that is not
an API key is left to the JWT authenticator that follows in ``DEFAULT_AUTHENTICATION_CLASSES``.

Verification costs one indexed lookup (by digest), and a verified key is cached in process for
``API_KEY_CACHE_SECONDS``: a key revoked elsewhere stops working within that bound; a key revoked
through this process stops at once (:func:`forget_key`). ``last_used_at`` is written at most once
per ``API_KEY_TOUCH_SECONDS`` per key, by a conditional UPDATE, never on every request.
"""

from __future__ import annotations

import time
from datetime import timedelta

import structlog
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication
from rest_framework.exceptions import AuthenticationFailed

from projects.keys import DEV_KEY, KEY_RE, key_digest, key_prefix
from projects.models import APIKey

logger = structlog.get_logger(__name__)

_CACHE_MAX = 10_000
_verified: dict[str, tuple[APIKey, float]] = {}  # digest -> (key, verified at, monotonic)
_touched: dict[str, float] = {}  # key id -> last touch, monotonic


class APIKeyPrincipal:
    """``request.user`` for requests made with an API key: authenticated, but not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, api_key: APIKey):
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


def forget_key(digest: str) -> None:
    _verified.pop(digest, None)


def _cached(digest: str) -> APIKey | None:
    hit = _verified.get(digest)
    if hit is not None and time.monotonic() - hit[1] < settings.API_KEY_CACHE_SECONDS:
        return hit[0]
    return None


def _remember(digest: str, key: APIKey | None) -> None:
    if key is not None and settings.API_KEY_CACHE_SECONDS > 0:
        if len(_verified) >= _CACHE_MAX:
            _verified.clear()
        _verified[digest] = (key, time.monotonic())


def _key_query(digest: str):
    return APIKey.objects.select_related("project").filter(digest=digest)


def _touch_query(key: APIKey):
    """The UPDATE of ``last_used_at``, or ``None`` when this process wrote it under a minute ago."""
    now = time.monotonic()
    if now - _touched.get(str(key.pk), -1e9) < settings.API_KEY_TOUCH_SECONDS:
        return None
    _touched[str(key.pk)] = now
    stamp = timezone.now()
    cutoff = stamp - timedelta(seconds=settings.API_KEY_TOUCH_SECONDS)
    # The condition makes this at most one write a minute per key across all processes.
    return APIKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=cutoff), pk=key.pk), stamp


def _check_format(raw: str) -> None:
    if raw == DEV_KEY:
        if not settings.DEV_API_KEY_ENABLED:
            raise AuthenticationFailed("The 'dev' key works only when DJANGO_ENV=development.", code="dev_key_disabled")
    elif not KEY_RE.match(raw):
        raise AuthenticationFailed(
            "Malformed API key: expected ak_live_… or ak_test_… followed by 40 letters and digits.",
            code="api_key_malformed",
        )


def _check_state(raw: str, key: APIKey | None) -> APIKey:
    if key is None:
        logger.info("api_key_unknown", key_prefix=key_prefix(raw))
        raise AuthenticationFailed("Unknown API key.", code="api_key_invalid")
    if key.is_revoked:
        raise AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
    if key.is_expired:
        raise AuthenticationFailed("This API key has expired.", code="api_key_expired")
    return key


def apikey_authenticate(raw: str) -> APIKey:
    """Return the active key for ``raw`` or raise ``AuthenticationFailed`` with a specific code."""
    _check_format(raw)
    digest = key_digest(raw)
    key = _cached(digest)
    if key is None:
        key = _key_query(digest).first()
        _remember(digest, key)
    key = _check_state(raw, key)
    touch = _touch_query(key)
    if touch is not None:
        touch[0].update(last_used_at=touch[1])
    return key


async def aapikey_authenticate(raw: str) -> APIKey:
    """:func:`apikey_authenticate` for async views: the same rules, awaiting the database."""
    _check_format(raw)
    digest = key_digest(raw)
    key = _cached(digest)
    if key is None:
        key = await _key_query(digest).afirst()
        _remember(digest, key)
    key = _check_state(raw, key)
    touch = _touch_query(key)
    if touch is not None:
        await touch[0].aupdate(last_used_at=touch[1])
    return key


def raw_key_from(request) -> str | None:
    header = request.META.get("HTTP_X_API_KEY")
    if header:
        return header.strip()
    auth = authentication.get_authorization_header(request).split()
    if len(auth) == 2 and auth[0].lower() == b"bearer":
        try:
            token = auth[1].decode()
        except UnicodeDecodeError:
            return None
        if token.startswith("ak_") or token == DEV_KEY:
            return token
    return None


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = raw_key_from(request)
        if raw is None:
            return None
        key = apikey_authenticate(raw)
        return APIKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
