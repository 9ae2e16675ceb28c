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


# --- keeping the API's middleware chain off threads -----------------------------------------
#
# Django's MiddlewareMixin runs process_request/process_response through sync_to_async when
# the chain is async: two thread hops per middleware, about fifteen per API request, which the
# gateway benchmark measured as most of its overhead. The wrappers below remove them: pure,
# I/O-free middleware runs inline on the event loop, and the middleware only the HTML site (the
# admin, the docs' session) needs is skipped for API paths.

API_PREFIXES = ("/api/v1/", "/v1/", "/healthz", "/readyz")


class _Inline:
    """Run a MiddlewareMixin whose hooks do no I/O (security headers, ...) without thread hops."""

    sync_capable = True
    async_capable = True
    wrapped: str

    def __init__(self, get_response):
        from django.utils.module_loading import import_string

        self.get_response = get_response
        self.inner = import_string(self.wrapped)(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self.inner(request)

    async def __acall__(self, request):
        response = None
        if hasattr(self.inner, "process_request"):
            response = self.inner.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self.inner, "process_response"):
            response = self.inner.process_response(request, response)
        return response


class SecurityMiddleware(_Inline):
    wrapped = "django.middleware.security.SecurityMiddleware"


class CommonMiddleware(_Inline):
    wrapped = "django.middleware.common.CommonMiddleware"


class XFrameOptionsMiddleware(_Inline):
    wrapped = "django.middleware.clickjacking.XFrameOptionsMiddleware"


class SiteMiddleware:
    """Sessions, CSRF, authentication and messages, for the HTML site only (admin, docs).

    API requests authenticate with tokens and keep no session, so under ``API_PREFIXES`` these
    are skipped (DRF and the async views exempt the API from CSRF anyway); every other path
    runs them exactly as Django would. The admin's system checks, which look for these classes
    in MIDDLEWARE, are silenced in settings for that reason.
    """

    sync_capable = True
    async_capable = True
    site_middleware = (
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    )

    def __init__(self, get_response):
        from django.utils.module_loading import import_string

        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        site = get_response
        for path in reversed(self.site_middleware):
            site = import_string(path)(site)
        self.site = site
        self.csrf = next(m for m in _chain(site) if type(m).__name__ == "CsrfViewMiddleware")
        if self.is_async:
            markcoroutinefunction(self)

    async def process_view(self, request, view_func, view_args, view_kwargs):
        # Django calls process_view hooks itself, after URL resolution. Async, so that API
        # requests are not sent to a thread for it; CSRF's check reads the request only.
        if request.path_info.startswith(API_PREFIXES):
            return None
        return self.csrf.process_view(request, view_func, view_args, view_kwargs)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        if request.path_info.startswith(API_PREFIXES):
            return self.get_response(request)
        return self.site(request)

    async def __acall__(self, request):
        if request.path_info.startswith(API_PREFIXES):
            return await self.get_response(request)
        return await self.site(request)


def _chain(middleware):
    while middleware is not None and hasattr(middleware, "get_response"):
        yield middleware
        middleware = middleware.get_response


_INLINE = {
    "django.middleware.security.SecurityMiddleware": "config.middleware.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware": "config.middleware.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "config.middleware.XFrameOptionsMiddleware",
}


def asgi_middleware(middleware: list[str]) -> list[str]:
    """The ASGI chain for ``MIDDLEWARE``: the site-only middleware gathered into SiteMiddleware
    (where the first of them stood), the pure ones inlined, the rest as they are."""
    site = set(SiteMiddleware.site_middleware)
    if not site <= set(middleware):
        return list(middleware)  # a different arrangement: leave it alone
    chain: list[str] = []
    for path in middleware:
        if path in site:
            if "config.middleware.SiteMiddleware" not in chain:
                chain.append("config.middleware.SiteMiddleware")
            continue
        chain.append(_INLINE.get(path, path))
    return chain
