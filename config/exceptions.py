"""The one error shape of the API, and the domain errors services raise.

Every error leaves as::

    {"error": {"code": "not_found", "message": "Not found.", "details": {...}}, "request_id": "..."}

``code`` is stable and machine-readable; ``message`` is for people; ``details`` carries field
errors for validation failures (``{"field": ["message", ...]}``) and is ``{}`` otherwise.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

logger = logging.getLogger("agentdesk.errors")


class DomainError(Exception):
    """An error a service raises on purpose; the API maps it to its status and code."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"
    message = "The request cannot be fulfilled."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None):
        self.message = message or self.message
        self.code = code or self.code
        self.details = details or {}
        super().__init__(self.message)


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    message = "The request conflicts with the current state."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


# DRF exception class -> our code, where DRF's own code is not the one we publish.
_CODES: dict[type, str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def envelope(code: str, message: str, details: Any = None, request=None) -> dict:
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "request_id": getattr(request, "id", None),
    }


def _message_and_code(exc: exceptions.APIException) -> tuple[str, str | None]:
    detail = exc.detail
    if isinstance(detail, dict) and "detail" in detail:  # simplejwt's token errors
        return str(detail["detail"]), str(detail.get("code") or "") or None
    if isinstance(detail, list) and detail:
        return str(detail[0]), getattr(detail[0], "code", None)
    code = getattr(detail, "code", None)
    return str(detail), code


@dataclass
class ErrorInfo:
    status: int
    code: str
    message: str
    details: Any
    headers: dict[str, str]


def error_info(exc: Exception) -> ErrorInfo | None:
    """How an exception is answered, or ``None`` for a bug (which becomes a logged 500)."""
    if isinstance(exc, ProtectedError | RestrictedError):
        # A row other rows still need (a provider that collections embed with, say).
        used_by = sorted({str(obj._meta.verbose_name_plural) for obj in exc.protected_objects if hasattr(obj, "_meta")})
        exc = Conflict(
            f"This is still in use by {', '.join(used_by) or 'other records'}; change or delete those first.",
            code="in_use",
            details={"used_by": used_by},
        )
    if isinstance(exc, DomainError):
        headers = {}
        if getattr(exc, "retry_after", None) is not None:
            headers["Retry-After"] = str(math.ceil(exc.retry_after))
        return ErrorInfo(exc.status_code, exc.code, exc.message, exc.details, headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if not isinstance(exc, exceptions.APIException):
        return None

    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        code, message = "validation_error", "The request is invalid; see details."
    else:
        details = {}
        message, detail_code = _message_and_code(exc)
        code = next((c for cls, c in _CODES.items() if type(exc) is cls), None)
        # A specific code chosen where the error was raised wins over the class default.
        if detail_code and detail_code not in (exc.default_code, "invalid", "error"):
            code = detail_code
        code = code or detail_code or exc.default_code
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            details = {"retry_after": int(exc.wait)}
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))
    return ErrorInfo(exc.status_code, code, message, details, headers)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's hook: every API error leaves in the envelope."""
    # Imported here: rest_framework.views loads the parser settings, which import this module.
    from rest_framework.views import set_rollback

    info = error_info(exc)
    if info is None:
        return None  # a bug: Django's handler500 answers with the envelope and logs it
    set_rollback()
    return Response(
        envelope(info.code, info.message, info.details, context.get("request")),
        status=info.status,
        headers=info.headers,
    )


def error_response(exc: Exception, request) -> JsonResponse | None:
    """The same answer as :func:`exception_handler`, for plain (async) Django views."""
    info = error_info(exc)
    if info is None:
        return None
    response = JsonResponse(envelope(info.code, info.message, info.details, request), status=info.status)
    for name, value in info.headers.items():
        response[name] = value
    return response


# --- Django-level handlers, for URLs outside DRF (config/urls.py) --------------------------


def handler404(request, exception=None):
    return JsonResponse(envelope("not_found", "Not found.", request=request), status=404)


def handler500(request):
    return JsonResponse(
        envelope("server_error", "Internal server error; it has been logged.", request=request),
        status=500,
    )


def handler400(request, exception=None):
    return JsonResponse(envelope("bad_request", "Bad request.", request=request), status=400)


def handler403(request, exception=None):
    return JsonResponse(envelope("permission_denied", "Permission denied.", request=request), status=403)
