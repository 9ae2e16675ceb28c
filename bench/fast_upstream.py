"""A fast loopback stand-in for an OpenAI-compatible API, for benchmarks.

``tests/fake_openai.py`` is built for tests (scripted steps, recorded requests) on
``ThreadingHTTPServer``: a thread per connection and a ``flush`` per SSE event. Under load it is
itself the bottleneck, which would hide the gateway's overhead. This one is a bare asyncio
protocol (uvloop when installed) that answers ``POST /v1/chat/completions`` at once with a fixed
reply, as a whole ``chat.completion`` or as a chunked SSE stream of ``chat.completion.chunk``
events (one per word, then the finish chunk, the usage chunk when asked for, and ``[DONE]``).
Keep-alive, HTTP/1.1 only.

Run it in its own process so it does not share a core's GIL with the client::

    python -m bench.fast_upstream [--port 0] [--impl fast|threading]

It prints ``PORT <n>`` once listening. ``--impl threading`` serves ``tests/fake_openai.py``
instead, to compare the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time

REPLY = "This is a short benchmark reply from the fake upstream model server."


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _prompt_tokens(messages) -> int:
    return sum(len(str(m.get("content") or "").split()) + 3 for m in messages)


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _chunk(payload: str) -> bytes:
    data = f"data: {payload}\n\n".encode()
    return f"{len(data):X}\r\n".encode() + data + b"\r\n"


def chat_response(body: dict) -> bytes:
    """The whole HTTP response (head and body) to a chat completion request."""
    messages = body.get("messages") or []
    model = body.get("model") or "fake-model"
    prompt = _prompt_tokens(messages)
    completion = len(REPLY.split())
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    base = {"id": "chatcmpl-bench", "created": int(time.time()), "model": model}
    if not body.get("stream"):
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
            "usage": usage,
        }
        return _response("200 OK", "application/json", json.dumps(payload).encode())

    base["object"] = "chat.completion.chunk"

    def event(delta: dict, finish: str | None = None) -> bytes:
        return _chunk(json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))

    parts = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        event({"role": "assistant", "content": ""}),
        *(event({"content": word}) for word in _words(REPLY)),
        event({}, "stop"),
    ]
    if (body.get("stream_options") or {}).get("include_usage"):
        parts.append(_chunk(json.dumps({**base, "choices": [], "usage": usage})))
    parts += [_chunk("[DONE]"), b"0\r\n\r\n"]
    return b"".join(parts)


_MODELS = _response(
    "200 OK",
    "application/json",
    json.dumps(
        {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "fake"}]}
    ).encode(),
)
_NOT_FOUND = _response(
    "404 Not Found", "application/json", b'{"error":{"message":"not found","type":"invalid_request_error"}}'
)
_BAD_REQUEST = _response(
    "400 Bad Request", "application/json", b'{"error":{"message":"bad JSON","type":"invalid_request_error"}}'
)


class _HTTP(asyncio.Protocol):
    """Just enough HTTP/1.1: request line, Content-Length bodies, keep-alive, pipelining."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ", 2)[:2]
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            raw = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.transport.write(self._answer(method, path.split("?", 1)[0].rstrip("/"), raw))
            if close:
                self.transport.close()
                return

    @staticmethod
    def _answer(method: str, path: str, raw: bytes) -> bytes:
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                return chat_response(json.loads(raw or b"{}"))
            except ValueError:
                return _BAD_REQUEST
        if method == "GET" and path.endswith("/models"):
            return _MODELS
        return _NOT_FOUND


async def _serve_fast(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HTTP, "127.0.0.1", port, backlog=1024, reuse_address=True)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def _serve_threading() -> None:
    from tests.fake_openai import start_fake_openai

    fake = start_fake_openai()
    fake.requests = _Discard()  # do not keep every request of a benchmark in memory
    print(f"PORT {fake.server.server_address[1]}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    fake.close()


class _Discard(list):
    def append(self, item) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--impl", choices=["fast", "threading"], default="fast")
    args = parser.parse_args(argv)
    if args.impl == "threading":
        _serve_threading()
        return
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
        runner = asyncio.run
    runner(_serve_fast(args.port))


if __name__ == "__main__":
    sys.exit(main())
