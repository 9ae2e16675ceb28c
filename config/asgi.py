"""The ASGI application (uvicorn, gunicorn with uvicorn workers).

Django runs each request in a ThreadSensitiveContext, so that sync code of one request (the
ORM behind the async ORM API, sync middleware, sync views) runs on one thread. By default that
thread is created for the request and joined after it, which costs about a millisecond per
request on the hot path. Here the single-thread executors are kept in a pool and reused.

The model-call routes (``HOT_PATHS``) take a shorter way through the same handler: the same
middleware, view, error handling and closing, without the thread hop for ``request_started``
and without URL resolution (see :meth:`PooledASGIHandler.handle_hot`).
"""

import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import AsyncToSync, ThreadSensitiveContext, sync_to_async

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import get_resolver, set_script_prefix

django.setup(set_prefix=False)

POOL_MAX = 64  # idle executors kept; more concurrent requests get fresh ones, dropped after
HOT_PATHS = frozenset({"/v1/chat/completions"})


class PooledASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []
        self._hot_matches: dict = {}  # path -> ResolverMatch, for HOT_PATHS (static routes)

    def load_middleware(self, is_async=False):
        """Build the chain from config.middleware.asgi_middleware(MIDDLEWARE): Django's
        MiddlewareMixin would send each middleware's hooks to a thread, twice per request."""
        from django.conf import settings

        from config.middleware import asgi_middleware

        listed = settings.MIDDLEWARE
        settings.MIDDLEWARE = asgi_middleware(listed)
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = listed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        handle = self.handle_hot if scope["path"] in HOT_PATHS else self.handle
        if getattr(AsyncToSync.executors, "current", None) is not None:
            # Called from sync code through async_to_sync (tests): its thread must keep running
            # the ORM, as Django's own handler arranges.
            async with ThreadSensitiveContext():
                return await handle(scope, receive, send)
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await handle(scope, receive, send)
        finally:
            if len(self._idle) < POOL_MAX:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    def resolve_request(self, request):
        """HOT_PATHS are static routes: resolved once, the match reused."""
        if request.path_info in HOT_PATHS and not hasattr(request, "urlconf"):
            match = self._hot_matches.get(request.path_info)
            if match is None:
                match = self._hot_matches[request.path_info] = get_resolver().resolve(request.path_info)
            request.resolver_match = match
            return match
        return super().resolve_request(request)

    async def handle_hot(self, scope, receive, send):
        """Django's ``ASGIHandler.handle``, less one thread hop: ``request_started`` is sent on
        the event loop's thread rather than on the request's.

        Its receivers are Django's ``reset_queries`` and ``close_old_connections``, which look at
        the calling thread's database connections. The request's thread (a pooled executor) holds
        none when a request begins: ``request_finished``, sent there when the previous request
        closed (or was cancelled), gave its connection back. Everything else is Django's: the body,
        the middleware chain and view, the client-disconnect watch that cancels the view, and
        ``response.close()`` (``request_finished``, deferred usage rows) on the request's thread.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away mid-send
                await self.send_response(response, send)
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await sync_to_async(response.close)()
        body_file.close()


application = PooledASGIHandler()
