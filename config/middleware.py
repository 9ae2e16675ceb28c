"""Request id: accepted from ``X-Request-ID`` when sane, generated otherwise; echoed on the
response, bound to every log line of the request, and put in every error body."""

from __future__ import annotations

import logging
import re
import time
import uuid

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

logger = structlog.get_logger("agentdesk.request")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(header: str | None) -> str:
    if header and _REQUEST_ID_RE.match(header):
        return header
    return uuid.uuid4().hex


class RequestIDMiddleware:
    """Works under WSGI and ASGI without forcing either onto a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _begin(self, request) -> float:
        request.id = request_id_from(request.headers.get("X-Request-ID"))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request.id)
        return time.perf_counter()

    def _end(self, request, response, started: float):
        response["X-Request-ID"] = request.id
        level = logging.WARNING if response.status_code >= 500 else logging.INFO
        logger.log(
            level,
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        structlog.contextvars.clear_contextvars()
        return response

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = self._begin(request)
        return self._end(request, self.get_response(request), started)

    async def __acall__(self, request):
        started = self._begin(request)
        return self._end(request, await self.get_response(request), started)


class StaticFilesMiddleware:
    """WhiteNoise for ``STATIC_URL`` paths only, without making the whole chain synchronous.

    WhiteNoise's middleware is sync-only; under ASGI that would push every request, API calls
    included, through a thread. Here only static paths reach WhiteNoise (in a thread); the rest
    pass straight on, async when the chain is.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        from django.conf import settings
        from whitenoise.middleware import WhiteNoiseMiddleware

        self.get_response = get_response
        self.whitenoise = WhiteNoiseMiddleware(get_response)
        self.prefix = self.whitenoise.static_prefix
        self.is_async = iscoroutinefunction(get_response)
        self.autorefresh = self.whitenoise.autorefresh or settings.DEBUG
        if self.is_async:
            markcoroutinefunction(self)

    def _find(self, path: str):
        if self.autorefresh:
            return self.whitenoise.find_file(path)
        return self.whitenoise.files.get(path)

    def _serve(self, request):
        static_file = self._find(request.path_info)
        return None if static_file is None else self.whitenoise.serve(static_file, request)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        if request.path_info.startswith(self.prefix):
            response = self._serve(request)
            if response is not None:
                return response
        return self.get_response(request)

    async def __acall__(self, request):
        if request.path_info.startswith(self.prefix):
            from asgiref.sync import sync_to_async

            response = await sync_to_async(self._serve, thread_sensitive=False)(request)
            if response is not None:
                return response
        return await self.get_response(request)
