"""API-key and invitation-token material: generation and digests. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from django.conf import settings

_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 40  # 40 base62 characters: ~238 bits
KEY_RE = re.compile(rf"^ak_(live|test)_[A-Za-z0-9]{{{SECRET_LENGTH}}}$")
DEV_KEY = "dev"
PREFIX_SECRET_CHARS = 8  # how much of the secret the display prefix shows


def generate_key(environment: str) -> str:
    """A new key: ``ak_live_`` or ``ak_test_`` + 40 random base62 characters."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    return f"ak_{environment}_{body}"


def key_prefix(raw: str) -> str:
    """The part people see in lists and logs: ``ak_live_AbCd1234``."""
    if raw == DEV_KEY:
        return DEV_KEY
    kind = raw[: len("ak_live_")]
    return kind + raw[len(kind) : len(kind) + PREFIX_SECRET_CHARS]


def key_digest(raw: str) -> str:
    """HMAC-SHA-256 of the whole key under ``API_KEY_PEPPER`` (not ``SECRET_KEY``)."""
    return hmac.new(settings.API_KEY_PEPPER.encode(), raw.encode(), hashlib.sha256).hexdigest()


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hmac.new(settings.API_KEY_PEPPER.encode(), b"invitation:" + token.encode(), hashlib.sha256).hexdigest()
