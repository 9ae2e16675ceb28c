"""Encryption at rest for credentials we must be able to read back (provider API keys, tool
headers). Fernet (AES-128-CBC + HMAC-SHA-256) under keys derived from ``FIELD_ENCRYPTION_KEYS``;
the first key encrypts, all of them decrypt, so a key can be rotated by prepending a new one."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    derived = [Fernet(base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest())) for k in keys]
    return MultiFernet(derived)


def encrypt(value: str) -> str:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS)).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("cannot decrypt: FIELD_ENCRYPTION_KEYS does not hold the key it was written with") from None


class EncryptedTextField(models.TextField):
    """A text column stored encrypted; Python code sees plain text. Not searchable, by design."""

    def from_db_value(self, value, expression, connection):
        return None if value in (None, "") else decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value if value in (None, "") else encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON object stored as encrypted text (e.g. tool headers that carry tokens)."""

    def from_db_value(self, value, expression, connection):
        import json

        return {} if value in (None, "") else json.loads(decrypt(value))

    def get_prep_value(self, value):
        import json

        return encrypt(json.dumps(value or {}, sort_keys=True))

    def to_python(self, value):
        import json

        if isinstance(value, dict):
            return value
        return {} if value in (None, "") else json.loads(value)
