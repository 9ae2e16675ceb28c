"""Calling HTTP tools (``agents.tools.tool_execute``) against a real loopback HTTP server, and the
address rules that keep tools away from private networks.

Loopback is itself a private target, so the tests that expect a request to arrive turn on
``TOOLS_ALLOW_PRIVATE_NETWORKS``; the refusal tests turn it off and check no request arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from agents import tools
from agents.models import Tool
from agents.tools import address_is_public, ip_literal, tool_execute, validate_tool_url

PARAMETERS = {"type": "object", "properties": {"order_id": {"type": "string"}}}


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes


@dataclass
class ToolServer:
    base_url: str
    requests: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers), self.rfile.read(length))
        self.server.seen.append(seen)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self._respond(parts.path)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _respond(self, path: str) -> None:
        if path == "/slow":
            time.sleep(1)
            self._send(200, b'{"late": true}', "application/json")
        elif path == "/text":
            self._send(200, "plain words, caf\u00e9".encode(), "text/plain; charset=utf-8")
        elif path == "/broken-json":
            self._send(200, b"{not json", "application/json")
        elif path == "/big":
            self._send(200, json.dumps({"data": "x" * 40_000}).encode(), "application/json")
        elif path == "/redirect":
            self._send(302, b"", "text/plain", Location="http://169.254.169.254/latest/meta-data/")
        elif path == "/missing":
            self._send(404, b'{"detail": "no such order"}', "application/json")
        else:
            self._send(200, json.dumps({"ok": True, "path": path}).encode(), "application/json")


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield ToolServer(base_url=f"http://127.0.0.1:{httpd.server_port}", requests=httpd.seen)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def private_ok(settings):
    settings.TOOLS_ALLOW_PRIVATE_NETWORKS = True


def make_tool(url_template: str, method: str = "GET", **fields) -> Tool:
    fields.setdefault("timeout_seconds", 5)
    return Tool(name="t", method=method, url_template=url_template, **fields)


def call(tool: Tool, arguments, config=None) -> dict:
    return asyncio.run(tool_execute(tool=tool, config=config, arguments=arguments))


# --- calls that reach the server ----------------------------------------------------------


@pytest.mark.usefixtures("private_ok")
class TestCalls:
    def test_get_fills_placeholders_and_sends_the_rest_as_the_query(self, server):
        tool = make_tool(server.base_url + "/orders/{order_id}?v=2")
        arguments = json.dumps({"order_id": "A/1 ?#", "expand": True, "tags": ["a", "b"], "limit": 3, "skip": None})

        result = call(tool, arguments, config={"region": "eu"})

        assert result == {"status": 200, "body": {"ok": True, "path": "/orders/A%2F1%20%3F%23"}}
        [seen] = server.requests
        assert seen.method == "GET" and seen.body == b""
        assert seen.query == {"v": ["2"], "expand": ["true"], "tags": ["a", "b"], "limit": ["3"], "region": ["eu"]}

    def test_the_bindings_config_overrides_the_models_arguments(self, server):
        tool = make_tool(server.base_url + "/orders/{order_id}")

        call(tool, {"order_id": "mine", "region": "us"}, config={"order_id": "fixed", "region": "eu"})

        [seen] = server.requests
        assert seen.path == "/orders/fixed" and seen.query == {"region": ["eu"]}

    def test_an_argument_cannot_climb_out_of_its_path_segment(self, server):
        tool = make_tool(server.base_url + "/orders/{order_id}/items")

        call(tool, {"order_id": ".."})
        call(tool, {"order_id": "../../admin"})

        assert [s.path for s in server.requests] == ["/orders/%2E%2E/items", "/orders/..%2F..%2Fadmin/items"]

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
    def test_methods_with_a_body_send_the_rest_as_json(self, server, method):
        tool = make_tool(server.base_url + "/orders/{order_id}/notes", method=method)

        result = call(tool, {"order_id": "42", "note": "Call me", "urgent": True, "skip": None}, config={"by": "bot"})

        assert result["status"] == 200
        [seen] = server.requests
        assert (seen.method, seen.path, seen.query) == (method, "/orders/42/notes", {})
        assert seen.headers["Content-Type"] == "application/json"
        assert json.loads(seen.body) == {"note": "Call me", "urgent": True, "skip": None, "by": "bot"}

    def test_delete_sends_the_rest_as_the_query(self, server):
        call(make_tool(server.base_url + "/orders/{order_id}", method="DELETE"), {"order_id": "7", "reason": "dup"})

        [seen] = server.requests
        assert (seen.method, seen.path, seen.query, seen.body) == ("DELETE", "/orders/7", {"reason": ["dup"]}, b"")

    def test_the_tools_headers_are_sent(self, server):
        tool = make_tool(
            server.base_url + "/h", headers={"Authorization": "Bearer s3cret", "X-Tenant": "acme", "host": "evil"}
        )

        call(tool, "{}")

        [seen] = server.requests
        assert seen.headers["Authorization"] == "Bearer s3cret"
        assert seen.headers["X-Tenant"] == "acme"
        assert seen.headers["User-Agent"] == tools.USER_AGENT
        assert seen.headers["Host"] == server.base_url.removeprefix("http://")  # a tool cannot set Host

    def test_a_name_is_resolved_pinned_and_kept_in_the_host_header(self, server):
        port = server.base_url.rsplit(":", 1)[1]

        result = call(make_tool(f"http://localhost:{port}/by-name"), {})

        assert result["status"] == 200
        assert server.requests[-1].headers["Host"] == f"localhost:{port}"

    def test_a_non_json_response_is_returned_as_text(self, server):
        assert call(make_tool(server.base_url + "/text"), None) == {"status": 200, "body": "plain words, caf\u00e9"}

    def test_invalid_json_is_returned_as_text(self, server):
        assert call(make_tool(server.base_url + "/broken-json"), "") == {"status": 200, "body": "{not json"}

    def test_error_statuses_are_results_not_errors(self, server):
        assert call(make_tool(server.base_url + "/missing"), {}) == {
            "status": 404,
            "body": {"detail": "no such order"},
        }

    def test_a_large_body_is_cut_to_16_kb_of_text(self, server):
        result = call(make_tool(server.base_url + "/big"), {})

        assert result["status"] == 200 and result["truncated"] is True
        assert isinstance(result["body"], str) and len(result["body"]) == tools.RESPONSE_LIMIT

    def test_redirects_are_not_followed(self, server):
        result = call(make_tool(server.base_url + "/redirect"), {})

        assert result == {"status": 302, "body": ""}
        assert len(server.requests) == 1

    def test_a_slow_tool_times_out(self, server):
        tool = make_tool(server.base_url + "/slow", timeout_seconds=0.2)

        started = time.monotonic()
        result = call(tool, {})

        assert time.monotonic() - started < 0.9
        assert result["status"] is None and "0.2 s" in result["error"]

    def test_a_closed_port_is_an_error_result(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]

        result = call(make_tool(f"http://127.0.0.1:{port}/x"), {})

        assert result["status"] is None and "could not be reached" in result["error"]


# --- calls that never leave ---------------------------------------------------------------


class TestRefusals:
    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
    def test_loopback_is_refused_when_private_networks_are_off(self, server, settings, host):
        settings.TOOLS_ALLOW_PRIVATE_NETWORKS = False
        url = server.base_url.replace("127.0.0.1", host) + "/orders/{order_id}"

        result = call(make_tool(url), {"order_id": "1"})

        assert result == {"error": "target not allowed"}
        assert server.requests == []

    @pytest.mark.parametrize(
        "resolved",
        [["10.0.0.7"], ["93.184.216.34", "169.254.169.254"], ["::1"], ["2606:2800:220:1::", "fd00::5"]],
    )
    def test_a_name_is_refused_if_any_address_it_resolves_to_is_private(self, monkeypatch, settings, resolved):
        settings.TOOLS_ALLOW_PRIVATE_NETWORKS = False

        async def resolve(host, port):
            assert (host, port) == ("api.example.com", 443)
            return [ipaddress.ip_address(a) for a in resolved]

        monkeypatch.setattr(tools, "_resolve", resolve)

        assert call(make_tool("https://api.example.com/x"), {}) == {"error": "target not allowed"}

    def test_an_unresolvable_name_is_an_error_result(self, monkeypatch):
        async def resolve(host, port):
            raise socket.gaierror("Name or service not known")

        monkeypatch.setattr(tools, "_resolve", resolve)

        result = call(make_tool("https://no-such-host.invalid/x"), {})

        assert result["status"] is None and "could not resolve" in result["error"]

    @pytest.mark.parametrize(
        ("arguments", "fragment"),
        [
            ('{"order_id": ', "not valid JSON"),
            ("[1, 2]", "JSON object"),
            ('"just text"', "JSON object"),
            ("{}", "order_id"),
            ({"order_id": None}, "order_id"),
        ],
    )
    def test_bad_arguments_are_reported_without_a_request(self, server, settings, arguments, fragment):
        settings.TOOLS_ALLOW_PRIVATE_NETWORKS = True

        result = call(make_tool(server.base_url + "/orders/{order_id}"), arguments)

        assert set(result) == {"error"} and fragment in result["error"]
        assert server.requests == []


# --- the address rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("127.0.0.1", False),
        ("0.0.0.0", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("224.0.0.251", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
    ],
)
def test_which_addresses_are_public(address, public):
    assert address_is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("api.example.com", None),
        ("cafe.example", None),
        ("deadbeef", None),
    ],
)
def test_ip_literals_include_the_legacy_spellings(host, expected):
    got = ip_literal(host)
    assert (str(got) if got else None) == expected


def test_validate_tool_url_reports_on_the_url_template_field(settings):
    settings.TOOLS_ALLOW_PRIVATE_NETWORKS = False

    with pytest.raises(ValidationError) as caught:
        validate_tool_url("http://169.254.169.254/{order_id}", PARAMETERS)

    assert list(caught.value.message_dict) == ["url_template"]
    validate_tool_url("https://api.example.com/orders/{order_id}", PARAMETERS)  # fine
