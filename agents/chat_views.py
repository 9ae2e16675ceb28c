"""Model-call endpoints, async end to end: agent chat, summarize, translate (all streamable),
and the OpenAI-compatible ``/v1/chat/completions`` and ``/v1/models``.

Streams are Server-Sent Events: OpenAI-style ``chat.completion.chunk`` objects as ``data:``
lines, typed ``event: tool_call`` / ``event: tool_result`` events, ``: heartbeat`` comments while
the model is silent, a final ``event: final`` with the usage (agent endpoints), and
``data: [DONE]``. A client that goes away cancels the stream, which closes the upstream call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from rest_framework.exceptions import ParseError

from agents import chat_docs
from agents.chat import (
    AgentEvent,
    AgentReply,
    aagent_target,
    agent_respond,
    aprovider_target,
    conversation_append,
    conversation_history,
)
from agents.chat_serializers import (
    AgentChatRequestSerializer,
    ChatCompletionRequestSerializer,
    SummarizeRequestSerializer,
    TranslateRequestSerializer,
)
from agents.models import Agent, Conversation, Provider
from agents.providers import gateway
from agents.providers.base import ChatRequest, Usage, estimate_prompt_tokens, estimate_tokens
from agents.selectors import aactive_agent_by_name, aprovider_by_name
from config.exceptions import PayloadTooLarge, error_info
from projects.models import APIKey, Role
from projects.tenancy import ProjectScopedAsyncView
from usage.services import CallContext, ledger_bind, ledger_current, ledger_defer, ledger_flush, ledger_take

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15
HEARTBEAT_READ_AHEAD = 64  # SSE events read ahead of a slow client


# --- helpers ------------------------------------------------------------------------------


@functools.cache
def _validator(serializer_class):
    """One instance per request serializer: DRF deep-copies a serializer's fields for every new
    instance (~0.5 ms for the completions body), and ``run_validation`` keeps no state on it."""
    return serializer_class()


def parse_body(request, serializer_class) -> dict:
    """The JSON body, size-limited and validated; raises the API's 400/413 errors."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    body = request.body
    if len(body) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"JSON parse error - {exc}") from None
    return _validator(serializer_class).run_validation(data)


def call_context(request, **ids) -> CallContext:
    context = request.project_context
    api_key: APIKey | None = context.api_key
    return CallContext(
        project_id=request.project.pk,
        api_key_id=api_key.pk if api_key else None,
        user_id=None if api_key else request.caller.pk,
        request_id=getattr(request, "id", ""),
        **ids,
    )


def sse(data, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


async def with_heartbeat(source: AsyncIterator[str], interval: float) -> AsyncIterator[str]:
    """Pass ``source`` through, with a comment line whenever it is silent for ``interval``.

    One task reads ``source`` ahead into a short buffer; what is ready when the reader comes back
    leaves as one piece (one ASGI message, one write), and only a silence costs a timer. Per item
    this was a task and an ``asyncio.wait``, and a write per SSE event: ~30 us an event.
    """
    loop = asyncio.get_running_loop()
    ready: list[str] = []
    done = False
    waiter: asyncio.Future | None = None  # the reader, waiting for items
    room: asyncio.Future | None = None  # the pump, waiting for the reader to take them

    def wake(future: asyncio.Future | None) -> None:
        if future is not None and not future.done():
            future.set_result(None)

    async def pump() -> None:
        nonlocal done, room
        try:
            async for item in source:
                ready.append(item)
                wake(waiter)
                if len(ready) >= HEARTBEAT_READ_AHEAD:
                    room = loop.create_future()
                    await room
        finally:
            done = True
            wake(waiter)

    task = loop.create_task(pump())
    try:
        while True:
            if not ready and not done:
                waiter = loop.create_future()
                timer = loop.call_later(interval, wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    waiter = None
            if ready:
                batch = "".join(ready)
                ready.clear()
                wake(room)
                yield batch
            elif done:
                task.result()  # the source's own error, if it failed
                return
            else:
                yield ": heartbeat\n\n"
    finally:
        if not task.done():
            # The client went away: stop the read in flight, which closes the source.
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await source.aclose()


async def event_stream(request, source: AsyncIterator[str]) -> HttpResponse:
    """An SSE response. Under ASGI it streams, with heartbeats. Under WSGI (the sync test client,
    a WSGI server) a stream cannot outlive this event loop, so it is read to the end here and
    sent in one piece: correct, only not incremental."""
    if isinstance(request, ASGIRequest):
        content = with_heartbeat(source, HEARTBEAT_SECONDS)
        rows = ledger_current()
        if rows is not None:  # the stream's calls are written when the response is closed
            content = ledger_bind(content, rows)
        response = StreamingHttpResponse(content, content_type="text/event-stream")
    else:
        response = HttpResponse("".join([item async for item in source]), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def primed(events: AsyncIterator[AgentEvent]) -> AsyncIterator[AgentEvent]:
    """Pull the first event now, so that a failure before any output is an HTTP error, not a
    broken stream; then replay it and go on."""
    iterator = events.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None

    async def replay():
        if first is not None:
            yield first
        async for item in iterator:
            yield item

    return replay()


def error_event(exc: Exception) -> dict:
    info = error_info(exc)
    if info is None:
        logger.exception("stream failed", exc_info=exc)
        return {"error": {"code": "server_error", "message": "Internal server error; it has been logged."}}
    return {"error": {"code": info.code, "message": info.message, "details": info.details}}


class _Completion:
    """Builds OpenAI ``chat.completion`` objects and chunks for one response."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }

    def usage_chunk(self, usage) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": _usage(usage),
        }

    def whole(self, *, content: str, finish_reason: str, usage, tool_calls: list[dict] | None = None, **extra) -> dict:
        message: dict = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
            message["content"] = content or None
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": _usage(usage),
            **extra,
        }


def _usage(usage) -> dict:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


class _MeteredView(ProjectScopedAsyncView):
    """Model-call endpoints: the usage rows of a request's calls, streamed or not, are written
    after its response has been sent, in one INSERT (a stream the client leaves writes at once)."""

    async def dispatch(self, request, *args, **kwargs):
        token = ledger_defer()
        response = None
        try:
            response = await super().dispatch(request, *args, **kwargs)
            return response
        finally:
            rows = ledger_take(token)
            if response is not None and (rows or response.streaming):
                # Django closes a response after sending it (ASGI: in this request's thread), so
                # the rows land then, off the answer's path; a stream's calls are still being
                # added while it streams. _resource_closers is how Django's own file responses
                # hook that moment.
                response._resource_closers.append(partial(ledger_flush, rows))
            elif rows:  # no response (cancelled): do not lose what was metered
                await asyncio.shield(asyncio.ensure_future(sync_to_async(ledger_flush)(rows)))


# --- agent endpoints ----------------------------------------------------------------------


async def _agent_sse(completion: _Completion, events: AsyncIterator[AgentEvent], finish: dict) -> AsyncIterator[str]:
    yield sse(completion.chunk({"role": "assistant", "content": ""}))
    try:
        async for event in events:
            if event.type == "chunk":
                yield sse(completion.chunk({"content": event.data}))
            elif event.type in ("retrieval", "tool_call", "tool_result"):
                yield sse(event.data, event=event.type)
            elif event.type == "final":
                reply: AgentReply = event.data
                yield sse(completion.chunk({}, reply.finish_reason))
                yield sse(
                    {
                        "content": reply.content,
                        "finish_reason": reply.finish_reason,
                        "model": reply.model,
                        "usage": reply.usage.as_dict(),
                        **finish,
                        "citations": reply.citations,
                    },
                    event="final",
                )
    except Exception as exc:  # after the first byte, errors travel in the stream
        yield sse(error_event(exc), event="error")
    yield sse("[DONE]")


class AgentChatView(_MeteredView):
    """``POST /api/v1/agents/{id}/chat``."""

    schema_view = chat_docs.AgentChatDoc

    async def post(self, request, pk):
        agent = await self.scoped(Agent.objects.all(), request, pk=pk)  # 404 before any 400
        data = parse_body(request, AgentChatRequestSerializer)
        if not agent.is_active:
            raise ParseError("This agent is inactive.", code="agent_inactive")
        conversation = None
        history: list[dict] = []
        if data.get("conversation_id"):
            conversation = await self.scoped(
                Conversation.objects.all(), request, pk=data["conversation_id"], agent=agent
            )
            history = await conversation_history(conversation, agent.memory_window)
        elif data["new_conversation"]:
            first = next((m.get("content") for m in data["messages"] if m["role"] == "user"), "") or ""
            conversation = await Conversation.objects.acreate(project=request.project, agent=agent, title=first[:200])
        new_messages = [dict(m) for m in data["messages"]]
        ctx = call_context(request, agent_id=agent.pk, conversation_id=conversation.pk if conversation else None)
        events = agent_respond(
            ctx=ctx,
            agent=agent,
            messages=history + new_messages,
            stream=data["stream"],
            temperature=data.get("temperature"),
            max_tokens=data.get("max_tokens"),
        )

        async def remember(reply: AgentReply) -> None:
            if conversation is not None:
                await conversation_append(
                    conversation, [*new_messages, {"role": "assistant", "content": reply.content}]
                )

        completion = _Completion(agent.name)
        extra = {"conversation_id": str(conversation.pk) if conversation else None, "citations": []}
        if not data["stream"]:
            async for event in events:
                if event.type == "final":
                    reply = event.data
            await remember(reply)
            extra["citations"] = reply.citations
            body = completion.whole(
                content=reply.content, finish_reason=reply.finish_reason, usage=reply.usage, **extra
            )
            body["tool_calls"] = reply.tool_calls
            return JsonResponse(body)

        async def remembering(source):
            async for event in source:
                if event.type == "final":
                    await remember(event.data)
                yield event

        events = await primed(remembering(events))
        return await event_stream(request, _agent_sse(completion, events, extra))


_SUMMARY_STYLES = {
    "concise": "Summarize the text concisely in a short paragraph.",
    "detailed": "Summarize the text in detail, keeping every important point.",
    "bullet_points": "Summarize the text as a list of bullet points, one point per line starting with '- '.",
}


class _OneShotView(_MeteredView):
    """A single model call (no tools) with a fixed instruction, streamable."""

    serializer_class: type

    def instruction(self, data: dict) -> str:
        raise NotImplementedError

    async def post(self, request):
        data = parse_body(request, self.serializer_class)
        agent = None
        if data.get("agent_id"):
            agent = await self.scoped(Agent.objects.all(), request, pk=data["agent_id"])
            target = await aagent_target(agent)
        else:
            target = await aprovider_target(project_id=request.project.pk, provider=None)
        chat = ChatRequest(
            messages=[{"role": "system", "content": self.instruction(data)}, {"role": "user", "content": data["text"]}],
            model=target.model,
            temperature=0.3 if data.get("temperature") is None else data["temperature"],
            max_tokens=data.get("max_tokens"),
        )
        ctx = call_context(request, agent_id=agent.pk if agent else None)
        completion = _Completion(target.model)
        if not data["stream"]:
            result = await gateway.chat(ctx, target, chat)
            return JsonResponse(
                completion.whole(content=result.content, finish_reason=result.finish_reason, usage=result.usage)
            )

        async def as_events():
            parts, usage = [], None
            async for chunk in gateway.stream(ctx, target, chat):
                usage = chunk.usage or usage
                if chunk.content:
                    parts.append(chunk.content)
                    yield AgentEvent("chunk", chunk.content)
            text = "".join(parts)
            usage = usage or Usage(estimate_prompt_tokens(chat.messages), estimate_tokens(text), estimated=True)
            yield AgentEvent("final", AgentReply(content=text, finish_reason="stop", model=target.model, usage=usage))

        events = await primed(as_events())
        return await event_stream(request, _agent_sse(completion, events, {}))


class SummarizeView(_OneShotView):
    """``POST /api/v1/summarize``."""

    schema_view = chat_docs.SummarizeDoc

    serializer_class = SummarizeRequestSerializer

    def instruction(self, data: dict) -> str:
        limit = f" Use at most {data['max_length']} words." if data.get("max_length") else ""
        return _SUMMARY_STYLES[data["style"]] + limit + " Answer with the summary only."


class TranslateView(_OneShotView):
    """``POST /api/v1/translate``."""

    schema_view = chat_docs.TranslateDoc

    serializer_class = TranslateRequestSerializer

    def instruction(self, data: dict) -> str:
        source = "" if data["source_language"] == "auto" else f" from {data['source_language']}"
        return f"Translate the user's text{source} into {data['target_language']}. Answer with the translation only."


# --- OpenAI-compatible API ----------------------------------------------------------------

_OPENAI_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


class _OpenAICompatible(_MeteredView):
    """Project API keys only; errors in OpenAI's shape so the official SDKs raise the right class."""

    allow_users = False

    def render_error(self, exc, request):
        info = error_info(exc)
        if info is None:
            logger.exception("openai-compatible endpoint failed", exc_info=exc)
            status, code, message, details, headers = 500, "server_error", "Internal server error.", {}, {}
        else:
            status, code, message, details, headers = info.status, info.code, info.message, info.details, info.headers
        error_type = _OPENAI_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        param = next(iter(details), None) if isinstance(details, dict) and code == "validation_error" else None
        if param:
            message = f"{message} {param}: {details[param]}"
        body = {
            "error": {"message": message, "type": error_type, "param": param, "code": code},
            "request_id": getattr(request, "id", None),
        }
        response = JsonResponse(body, status=status)
        for name, value in headers.items():
            response[name] = value
        return response


class ChatCompletionsView(_OpenAICompatible):
    """``POST /v1/chat/completions``: ``model`` names an agent of the key's project (its
    instructions, tools and model apply), ``provider-name/model``, or a model of the project's
    default provider."""

    schema_view = chat_docs.ChatCompletionsDoc

    async def post(self, request):
        data = parse_body(request, ChatCompletionRequestSerializer)
        messages = [dict(m) for m in data["messages"]]
        agent = await aactive_agent_by_name(request.project.pk, data["model"])
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        completion = _Completion(data["model"])

        if agent is not None:
            ctx = call_context(request, agent_id=agent.pk)
            events = agent_respond(
                ctx=ctx,
                agent=agent,
                messages=messages,
                stream=data["stream"],
                temperature=data.get("temperature"),
                max_tokens=data.get("max_tokens"),
            )
            if not data["stream"]:
                async for event in events:
                    if event.type == "final":
                        reply = event.data
                return JsonResponse(
                    completion.whole(content=reply.content, finish_reason=reply.finish_reason, usage=reply.usage)
                )
            return await event_stream(request, self._agent_chunks(completion, await primed(events), include_usage))

        provider_name, _, model_name = data["model"].partition("/")
        provider = await aprovider_by_name(request.project.pk, provider_name) if model_name else None
        target = await aprovider_target(
            project_id=request.project.pk, provider=provider, model=model_name if provider else data["model"]
        )
        chat = ChatRequest(
            messages=messages,
            model=target.model,
            temperature=data.get("temperature"),
            max_tokens=data.get("max_tokens"),
            tools=data.get("tools"),
            tool_choice=data.get("tool_choice"),
            stop=data.get("stop"),
            top_p=data.get("top_p"),
            user=data.get("user"),
        )
        ctx = call_context(request)
        if not data["stream"]:
            result = await gateway.chat(ctx, target, chat)
            calls = [c.as_openai() for c in result.tool_calls]
            return JsonResponse(
                completion.whole(
                    content=result.content, finish_reason=result.finish_reason, usage=result.usage, tool_calls=calls
                )
            )
        return await event_stream(
            request, self._provider_chunks(completion, await primed(gateway.stream(ctx, target, chat)), include_usage)
        )

    @staticmethod
    async def _provider_chunks(completion: _Completion, chunks, include_usage: bool) -> AsyncIterator[str]:
        yield sse(completion.chunk({"role": "assistant", "content": ""}))
        try:
            async for chunk in chunks:
                if chunk.usage is not None and not chunk.content and not chunk.tool_calls and not chunk.finish_reason:
                    if include_usage:
                        yield sse(completion.usage_chunk(chunk.usage))
                    continue
                delta: dict = {}
                if chunk.content:
                    delta["content"] = chunk.content
                if chunk.tool_calls:
                    delta["tool_calls"] = chunk.tool_calls
                if delta or chunk.finish_reason:
                    yield sse(completion.chunk(delta, chunk.finish_reason))
                if chunk.usage is not None and include_usage:
                    yield sse(completion.usage_chunk(chunk.usage))
        except Exception as exc:
            yield sse(error_event(exc))
        yield sse("[DONE]")

    @staticmethod
    async def _agent_chunks(completion: _Completion, events, include_usage: bool) -> AsyncIterator[str]:
        yield sse(completion.chunk({"role": "assistant", "content": ""}))
        try:
            async for event in events:
                if event.type == "chunk":
                    yield sse(completion.chunk({"content": event.data}))
                elif event.type == "final":
                    yield sse(completion.chunk({}, event.data.finish_reason))
                    if include_usage:
                        yield sse(completion.usage_chunk(event.data.usage))
        except Exception as exc:
            yield sse(error_event(exc))
        yield sse("[DONE]")


class ModelsView(_OpenAICompatible):
    """``GET /v1/models``: the project's active agents and its providers' default models."""

    schema_view = chat_docs.ModelsDoc

    http_method_names = ["get"]
    required_role = Role.VIEWER

    async def get(self, request):
        created = int(request.project.created_at.timestamp())
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "agent"}
            async for name in Agent.objects.filter(project=request.project, is_active=True)
            .order_by("name")
            .values_list("name", flat=True)
        ]
        async for provider in Provider.objects.filter(project=request.project).order_by("name"):
            if provider.default_chat_model:
                data.append(
                    {
                        "id": f"{provider.name}/{provider.default_chat_model}",
                        "object": "model",
                        "created": created,
                        "owned_by": provider.name,
                    }
                )
        return JsonResponse({"object": "list", "data": data})
