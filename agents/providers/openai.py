"""Any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp server, ...) through
the official ``openai`` SDK.

The SDK's own retries are off (``max_retries=0``): we retry here, on 429, 5xx, timeouts and
connection errors, with exponential backoff and full jitter, honouring ``Retry-After`` up to
``PROVIDER_MAX_RETRY_AFTER`` (a longer wait is returned to the caller as a 429 at once). A stream
is retried only before its first chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx2
import openai
from django.conf import settings
from openai._base_client import get_platform
from openai._httpx2 import request_exceptions, timeout_exceptions
from openai._models import FinalRequestOptions
from openai._utils import asyncify

from agents.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderAuthFailed,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ToolCall,
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
)

T = TypeVar("T")

# One SDK client (and its connection pool) per event loop and configuration; a loop's clients go
# with it (connections cannot move between loops).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)
_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncIterator[None]] = weakref.WeakKeyDictionary()
_chat_calls: weakref.WeakKeyDictionary[openai.AsyncOpenAI, _ChatCall] = weakref.WeakKeyDictionary()


async def _close(clients: dict[tuple, openai.AsyncOpenAI]) -> None:
    for client in list(clients.values()):
        _chat_calls.pop(client, None)
        with contextlib.suppress(Exception):  # closing is best effort
            await client.close()
    clients.clear()


async def close_clients() -> None:
    """Close the SDK clients opened in the running event loop (call before the loop ends)."""
    await _close(_clients.pop(asyncio.get_running_loop(), {}))


async def _close_with_loop(clients: dict[tuple, openai.AsyncOpenAI]) -> AsyncIterator[None]:
    """Parked at its ``yield`` for the life of its event loop. ``asyncio.run`` (and so every loop
    that ``async_to_sync`` makes for sync code: a Celery job, a script, a test) finalises async
    generators before it closes the loop: that closes the loop's clients and their aiohttp
    sessions, wherever they were opened from."""
    try:
        yield
    finally:
        await _close(clients)


def _http_client() -> Any:
    """The SDK's aiohttp transport by default: httpx2's anyio stack cost ~0.3 ms a call (a cancel
    scope per socket read), a tenth of what the gateway adds (bench/README.md). It reads no proxy
    from the environment; ``PROVIDER_HTTP_CLIENT=httpx`` (the SDK's default client) does."""
    if settings.PROVIDER_HTTP_CLIENT == "httpx":
        return None
    return openai.DefaultAioHttpClient()


def _loop_clients() -> dict[tuple, openai.AsyncOpenAI]:
    loop = asyncio.get_running_loop()
    clients = _clients.get(loop)
    if clients is None:
        clients = _clients[loop] = {}
        closer = _closers[loop] = _close_with_loop(clients)
        asyncio.ensure_future(closer.__anext__())  # runs it to its yield  # noqa: RUF006 - done at once
    return clients


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or exc.message)[:500]


_CHAT = "/chat/completions"


def _usage(reported: dict | None) -> Usage | None:
    if not reported:
        return None
    return Usage(reported.get("prompt_tokens") or 0, reported.get("completion_tokens") or 0)


class _ChatCall:
    """``POST /chat/completions`` on one SDK client, the request prepared by the SDK once.

    ``client.post`` rebuilds the same request for every call (options models copied twice, headers
    merged and validated, the URL parsed again): ~0.3 ms, a tenth of what the gateway adds. Here the
    SDK builds it once per client (URL, auth and platform headers, timeout); a call only swaps the
    body, then goes through the SDK's own send (its auth hooks) and, on failure, its own error
    classes, as ``AsyncAPIClient.request`` with retries off would.
    """

    def __init__(self, client: openai.AsyncOpenAI, template: httpx2.Request):
        self.client = client
        self.method = template.method
        self.url = template.url
        self.headers = [(k, v) for k, v in template.headers.raw if k.lower() != b"content-length"]
        self.extensions = template.extensions

    @classmethod
    async def for_client(cls, client: openai.AsyncOpenAI) -> _ChatCall:
        call = _chat_calls.get(client)
        if call is None:
            if client._platform is None:  # as the SDK does on its first request: may block
                client._platform = await asyncify(get_platform)()
            options = await client._prepare_options(
                FinalRequestOptions.construct(method="post", url=_CHAT, json_data={})
            )
            call = _chat_calls[client] = cls(client, client._build_request(options))
        return call

    async def send(self, body: dict, *, stream: bool) -> httpx2.Response:
        request = httpx2.Request(
            self.method,
            self.url,
            headers=self.headers,
            content=json.dumps(body, separators=(",", ":")).encode(),
            extensions=self.extensions,
        )
        await self.client._prepare_request(request)
        try:
            response = await self.client._send_request(request, stream=stream)
        except timeout_exceptions() as exc:
            raise openai.APITimeoutError(request=request) from exc
        except openai.OpenAIError:
            raise
        except request_exceptions() as exc:
            raise openai.APIConnectionError(request=request) from exc
        if response.is_error:
            if not response.is_closed:
                await response.aread()
            raise self.client._make_status_error_from_response(response) from None
        return response


def map_error(exc: Exception) -> ProviderError:
    """An SDK exception as the API error we answer with (upstream 401 -> our 502, and so on)."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout()
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailable("Could not connect to the model provider.")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = {"upstream_status": status, "upstream_message": _upstream_message(exc)}
        if status in (401, 403):
            return ProviderAuthFailed(details=detail)
        if status == 429:
            return ProviderRateLimited(retry_after=_retry_after(exc), details=detail)
        if status in (408, 409) or status >= 500:
            return ProviderUnavailable(f"The model provider failed ({status}).", details=detail)
        return ProviderRejected(
            f"The model provider rejected the request: {detail['upstream_message']}", details=detail
        )
    return ProviderError(f"Unexpected provider failure: {type(exc).__name__}")


class OpenAIAdapter:
    kind = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        organization: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ):
        self.api_key = api_key or "not-needed"  # local OpenAI-compatible servers often ignore it
        self.base_url = base_url or None
        self.organization = organization or None
        self.timeout = timeout
        self.max_retries = max_retries

    @property
    def client(self) -> openai.AsyncOpenAI:
        clients = _loop_clients()
        key = (self.api_key, self.base_url, self.organization, self.timeout, settings.PROVIDER_HTTP_CLIENT)
        client = clients.get(key)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=self.api_key,
                base_url=self.base_url,
                organization=self.organization,
                timeout=self.timeout,
                max_retries=0,
                http_client=_http_client(),
            )
            clients[key] = client
        return client

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = settings.PROVIDER_RETRY_BASE_SECONDS
        return random.uniform(0, min(settings.PROVIDER_RETRY_MAX_SECONDS, base * 2**attempt))  # noqa: S311

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await call()
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                error = map_error(exc)
                retry_after = getattr(error, "retry_after", None)
                too_long = retry_after is not None and retry_after > settings.PROVIDER_MAX_RETRY_AFTER
                if not error.retryable or attempt >= self.max_retries or too_long:
                    raise error from exc
                await asyncio.sleep(self._delay(attempt, retry_after))
                attempt += 1

    @staticmethod
    def _params(request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": request.model, "messages": request.messages}
        for name in ("temperature", "max_tokens", "tools", "tool_choice", "stop", "top_p", "user"):
            value = getattr(request, name)
            if value is not None:
                params[name] = value
        return params

    # Chat goes through the SDK's client (auth, base URL, organization, timeouts, its error
    # classes) with the request body as is and the answer as plain JSON: the typed
    # ``chat.completions.create`` spent ~1 ms per call transforming parameters and building
    # pydantic objects (one per streamed chunk) that we would take apart again at once; and the
    # request itself is prepared once per client (_ChatCall).

    async def _post_chat(self, body: dict) -> dict:
        call = await _ChatCall.for_client(self.client)
        response = await call.send(body, stream=False)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ProviderError("The model provider's answer is not a JSON object.")
        return answer

    async def _stream_chat(self, body: dict) -> openai.AsyncStream[object]:
        call = await _ChatCall.for_client(self.client)
        response = await call.send(body, stream=True)
        return openai.AsyncStream(cast_to=object, response=response, client=self.client)

    async def chat(self, request: ChatRequest) -> ChatResult:
        body = self._params(request)
        response: dict = await self._retrying(lambda: self._post_chat(body))
        choice = (response.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content = message.get("content") or ""
        calls = [
            ToolCall(
                id=c.get("id") or f"call_{i}",
                name=c["function"]["name"],
                arguments=c["function"].get("arguments") or "{}",
            )
            for i, c in enumerate(message.get("tool_calls") or [])
            if (c.get("function") or {}).get("name")
        ]
        return ChatResult(
            content=content,
            model=response.get("model") or request.model,
            finish_reason=choice.get("finish_reason") or "stop",
            tool_calls=calls,
            usage=_usage(response.get("usage"))
            or Usage(estimate_prompt_tokens(request.messages), estimate_tokens(content), estimated=True),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        body = {**self._params(request), "stream": True, "stream_options": {"include_usage": True}}
        upstream = await self._retrying(lambda: self._stream_chat(body))
        try:
            async for chunk in upstream:
                usage = _usage(chunk.get("usage"))
                model = chunk.get("model") or request.model
                choices = chunk.get("choices") or []
                if not choices:
                    if usage is not None:
                        yield ChatChunk(usage=usage, model=model)
                    continue
                delta = choices[0].get("delta") or {}
                yield ChatChunk(
                    content=delta.get("content") or "",
                    tool_calls=delta.get("tool_calls") or [],
                    finish_reason=choices[0].get("finish_reason"),
                    usage=usage,
                    model=model,
                )
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise map_error(exc) from exc
        finally:
            await upstream.close()  # stops the upstream call when our client goes away

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        response = await self._retrying(lambda: self.client.embeddings.create(model=model, input=texts))
        vectors = [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        if response.usage is not None:
            usage = Usage(prompt_tokens=response.usage.prompt_tokens or 0)
        else:
            usage = Usage(prompt_tokens=sum(estimate_tokens(t) for t in texts), estimated=True)
        return EmbeddingResult(vectors=vectors, model=response.model or model, usage=usage)

    async def models(self) -> list[str]:
        page = await self._retrying(lambda: self.client.models.list())
        return [m.id for m in page.data]
