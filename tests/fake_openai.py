"""A loopback stand-in for an OpenAI-compatible API, speaking its real HTTP and SSE protocol,
so that the real ``openai`` client runs in every provider test.

Each request takes the next scripted step (``server.script(...)``), or the default: echo the
last user message. Steps::

    Reply("text", usage=True)                   a completion (or a stream of it, word by word)
    ToolCalls([("get_order", '{"id": 7}')])     the model asks for tool calls
    Fail(429, retry_after=0)                    an error status with OpenAI's error body
    Hang(seconds)                               say nothing for a while (client timeouts)

Every request is kept in ``server.requests`` (method, path, headers, JSON body).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str
    usage: bool = True  # streams: whether to send the usage chunk when asked for it
    finish_reason: str = "stop"
    delay: float = 0.0  # streams: pause between words (to test clients that leave mid-stream)


@dataclass
class ToolCalls:
    calls: list[tuple[str, str]]  # (name, JSON arguments)
    usage: bool = True


@dataclass
class Fail:
    status: int
    retry_after: float | None = None
    message: str = "scripted failure"


@dataclass
class Hang:
    seconds: float


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeOpenAI:
    server: ThreadingHTTPServer
    steps: deque = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    aborted_streams: int = 0  # streams whose client went away before the end
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *steps) -> None:
        with self.lock:
            self.steps.extend(steps)

    def next_step(self):
        with self.lock:
            return self.steps.popleft() if self.steps else None

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _prompt_tokens(messages) -> int:
    return sum(len(str(m.get("content") or "").split()) + 3 for m in messages)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's algorithm meets
    # the client's delayed ACK and every call takes ~40 ms.
    disable_nagle_algorithm = True
    fake: FakeOpenAI  # set on the subclass

    def log_message(self, *args):  # quiet
        pass

    # --- plumbing -----------------------------------------------------------------------

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _sse(self, payload: str) -> None:
        data = f"data: {payload}\n\n".encode()
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _sse_end(self) -> None:
        self._sse("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _read(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _record(self, body) -> None:
        self.fake.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))

    # --- endpoints ----------------------------------------------------------------------

    def do_GET(self):
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in ("fake-model", "fake-embed")
            ]
            return self._json(200, {"object": "list", "data": data})
        return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        body = self._read()
        self._record(body)
        step = self.fake.next_step()
        if isinstance(step, Hang):
            time.sleep(step.seconds)
            step = None
        if isinstance(step, Fail):
            headers = {"Retry-After": str(step.retry_after)} if step.retry_after is not None else {}
            error_type = "rate_limit_error" if step.status == 429 else "api_error"
            return self._json(
                step.status, {"error": {"message": step.message, "type": error_type, "code": None}}, headers
            )
        if self.path.endswith("/embeddings"):
            return self._embeddings(body)
        if self.path.endswith("/chat/completions"):
            return self._chat(body, step)
        return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def _embeddings(self, body) -> None:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text) % 7), 1.0, float(i)]}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(len(str(t).split()) for t in inputs)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _chat(self, body, step) -> None:
        messages = body.get("messages") or []
        if step is None:
            last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
            step = Reply(f"Echo: {last_user.get('content') or ''}")
        prompt_tokens = _prompt_tokens(messages)
        created = int(time.time())
        model = body.get("model", "fake-model")
        if isinstance(step, ToolCalls):
            calls = [
                {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}
                for i, (name, args) in enumerate(step.calls)
            ]
            message, finish, completion_tokens = (
                {"role": "assistant", "content": None, "tool_calls": calls},
                "tool_calls",
                5,
            )
        else:
            message, finish = {"role": "assistant", "content": step.content}, step.finish_reason
            completion_tokens = len(step.content.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

        if not body.get("stream"):
            return self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
            )

        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model}
        self._sse_start()
        self._sse(
            json.dumps(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
                }
            )
        )
        if isinstance(step, ToolCalls):
            for i, call in enumerate(message["tool_calls"]):
                args = call["function"]["arguments"]
                half = len(args) // 2
                first = {
                    "index": i,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": args[:half]},
                }
                second = {"index": i, "function": {"arguments": args[half:]}}
                for delta in (first, second):
                    self._sse(
                        json.dumps(
                            {**base, "choices": [{"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": None}]}
                        )
                    )
        else:
            for word in _words(step.content):
                try:
                    self._sse(
                        json.dumps(
                            {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                        )
                    )
                except (BrokenPipeError, ConnectionResetError):
                    self.fake.aborted_streams += 1
                    return
                if step.delay:
                    time.sleep(step.delay)
        self._sse(json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if wants_usage and step.usage:
            self._sse(json.dumps({**base, "choices": [], "usage": usage}))
        self._sse_end()


def start_fake_openai() -> FakeOpenAI:
    handler = type("Handler", (_Handler,), {})
    server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128})
    server = server_class(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake = FakeOpenAI(server=server)
    handler.fake = fake
    threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True).start()
    return fake
