"""The ASGI application (uvicorn, gunicorn with uvicorn workers).

Django runs each request in a ThreadSensitiveContext, so that sync code of one request (the
ORM behind the async ORM API, sync middleware, sync views) runs on one thread. By default that
thread is created for the request and joined after it, which costs about a millisecond per
request on the hot path. Here the single-thread executors are kept in a pool and reused.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import AsyncToSync, ThreadSensitiveContext

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django
from django.core.handlers.asgi import ASGIHandler

django.setup(set_prefix=False)

POOL_MAX = 64  # idle executors kept; more concurrent requests get fresh ones, dropped after


class PooledASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []

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
        if getattr(AsyncToSync.executors, "current", None) is not None:
            # Called from sync code through async_to_sync (tests): its thread must keep running
            # the ORM, as Django's own handler arranges.
            return await super().__call__(scope, receive, send)
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < POOL_MAX:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)


application = PooledASGIHandler()
