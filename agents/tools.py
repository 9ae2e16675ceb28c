"""HTTP tools: checking a tool's URL when it is saved, and calling it when a model asks to.

Two guards stand between a model's tool call and the network, because a tool URL is written by a
tenant and its arguments by a model, and neither may reach our own infrastructure (the cloud
metadata service at 169.254.169.254, the database, the cache, other pods):

* :func:`validate_tool_url`, when a tool is saved: http(s) only, no credentials in the URL,
  placeholders only in the path and query (so arguments can never choose the host), and no IP
  literal or ``localhost`` name outside the public internet.
* :func:`tool_execute`, at call time: the host is resolved and refused if *any* of its
  addresses is not public; the request then goes to the address that was checked (the hostname
  stays in ``Host`` and TLS SNI), so a second DNS answer cannot swap in a private address.

``settings.TOOLS_ALLOW_PRIVATE_NETWORKS`` turns both address checks off (for tools on a private
network, and for tests against a loopback server).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import httpx2
from django.conf import settings
from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from agents.models import Tool

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9._-]+$")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

RESPONSE_LIMIT = 16 * 1024  # bytes of a response body handed back to the model
USER_AGENT = "AgentDesk-Tool/1.0"
TARGET_NOT_ALLOWED = "target not allowed"


# --- addresses ----------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64, compatible): each
    reaches that IPv4 host on some networks, so each must be public too."""
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo:
        found.extend(ip.teredo)
    if any(ip in net for net in (*_NAT64, _IPV4_COMPATIBLE)):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_is_public(ip: IPAddress) -> bool:
    """True for a unicast address of the public internet: not private, loopback, link-local,
    reserved, multicast, unspecified or shared (CGNAT), directly or through an embedded IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and not all(address_is_public(v4) for v4 in _embedded_ipv4(ip)):
        return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified
    )


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, or None for a name. Includes the legacy IPv4 spellings
    resolvers accept (``127.1``, ``0x7f.0.0.1``, ``2130706433``)."""
    host = host.strip("[]").removesuffix(".")  # "127.0.0.1." is 127.0.0.1 to a resolver
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _HOSTNAME.match(host) and re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _is_local_name(host: str) -> bool:
    host = host.rstrip(".").lower()
    return host in _LOCAL_NAMES or host.endswith(".localhost")


# --- validation when a tool is saved ------------------------------------------------------


def placeholders(url_template: str) -> list[str]:
    return PLACEHOLDER.findall(url_template)


def _valid_hostname(host: str) -> bool:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return bool(_HOSTNAME.match(ascii_host)) or ip_literal(host) is not None


def _refuse(*messages: str) -> NoReturn:
    raise ValidationError({"url_template": list(messages)})


def validate_tool_url(url_template: str, parameters: dict | None) -> None:
    """Raise :class:`django.core.exceptions.ValidationError` (on ``url_template``) unless
    ``url_template`` is a URL a tool may call.

    The rules: scheme http or https; a host; no user or password in the URL (credentials belong
    in the encrypted headers); ``{placeholders}`` are identifiers, balanced, only in the path or
    query, and each is declared in ``parameters["properties"]``; and, unless
    ``settings.TOOLS_ALLOW_PRIVATE_NETWORKS``, the host is neither a non-public IP literal nor a
    ``localhost`` name. Other names are resolved and checked again at call time.
    """
    names = placeholders(url_template)
    outside = PLACEHOLDER.sub("", url_template)
    if "{" in outside or "}" in outside:
        _refuse("Unbalanced braces: write placeholders as {name}.")
    if any(c.isspace() for c in url_template):
        _refuse("The URL may not contain whitespace.")
    bad_names = [name for name in names if not _IDENTIFIER.match(name)]
    if bad_names:
        _refuse(*(f"Placeholder {{{name}}} is not a valid name (letters, digits and _)." for name in bad_names))

    parts = urlsplit(url_template)
    if parts.scheme not in ("http", "https"):
        _refuse("The URL must start with http:// or https://.")
    if "{" in parts.netloc:
        _refuse("Placeholders may appear only in the path and query, never in the host.")
    if parts.username is not None or parts.password is not None:
        _refuse("Put credentials in the tool's headers (stored encrypted), not in the URL.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if not parts.hostname or not _valid_hostname(parts.hostname) or port == 0:
        _refuse("The URL's host or port is not valid.")
    if not settings.TOOLS_ALLOW_PRIVATE_NETWORKS:
        ip = ip_literal(parts.hostname)
        if _is_local_name(parts.hostname) or (ip is not None and not address_is_public(ip)):
            _refuse("Tools may not call private, loopback, link-local or reserved addresses.")

    declared = (parameters or {}).get("properties")
    declared = declared if isinstance(declared, dict) else {}
    undeclared = [name for name in dict.fromkeys(names) if name not in declared]
    if undeclared:
        _refuse(*(f"Placeholder {{{name}}} is not declared in parameters.properties." for name in undeclared))


def validate_tool_parameters(parameters: Any) -> None:
    """Raise :class:`django.core.exceptions.ValidationError` (on ``parameters``) unless it is a
    JSON Schema (2020-12) of an object, as function calling requires: ``{"type": "object", ...}``."""
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        raise ValidationError({"parameters": 'The parameters schema must describe an object: {"type": "object", ...}.'})
    if not isinstance(parameters.get("properties", {}), dict):
        raise ValidationError({"parameters": '"properties" must be an object.'})
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        where = f" at {'/'.join(str(p) for p in exc.path)}" if exc.path else ""
        raise ValidationError({"parameters": f"Not a valid JSON Schema{where}: {exc.message}"}) from None


# --- calling a tool -----------------------------------------------------------------------


def _text(value: Any) -> str:
    """How an argument appears in a URL: strings as they are, JSON for everything else."""
    return value if isinstance(value, str) else json.dumps(value)


def _query(args: dict) -> dict[str, str | list[str]]:
    """Query parameters: None is left out, a list repeats the parameter."""
    return {
        key: [_text(v) for v in value] if isinstance(value, list) else _text(value)
        for key, value in args.items()
        if value is not None
    }


def _path_segment(value: Any) -> str:
    # Fully encoded, "/" included, so an argument fills one segment and cannot climb out of it.
    text = quote(_text(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def _parse_arguments(arguments: str | dict | None) -> dict | str:
    """The arguments as a dict, or an error message for the model."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError) as exc:
        return f"arguments are not valid JSON: {exc}"
    if not isinstance(parsed, dict):
        return "arguments must be a JSON object"
    return parsed


async def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = ip_literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # A scoped IPv6 address arrives as "fe80::1%eth0".
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def _body(response: httpx2.Response, raw: bytes, truncated: bool) -> Any:
    try:
        text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", errors="replace")
    if not truncated and "json" in response.headers.get("content-type", "").lower():
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


async def tool_execute(*, tool: Tool, config: dict | None, arguments: str | dict | None) -> dict:
    """Call ``tool`` with a model's ``arguments`` and return what the model should read.

    ``arguments`` is the model's JSON text (or a dict); the binding's ``config`` is merged over
    it (fixed arguments win). Arguments named by ``{placeholders}`` in ``tool.url_template`` fill
    them, URL-encoded; the rest go in the query string for GET and DELETE, else in a JSON body.
    ``tool.headers`` are sent; redirects are not followed; ``tool.timeout_seconds`` bounds the
    call. The database is not touched (an unsaved Tool will do).

    Returns ``{"status": <HTTP status>, "body": <parsed JSON, or text>}``; a body over 16 KB is
    cut to that, returned as text, and ``"truncated": True`` is added. Problems are returned,
    never raised, since the model receives them as the tool's result:

    * ``{"error": "..."}`` when no request was made: invalid arguments, a missing placeholder
      value, or ``{"error": "target not allowed"}`` when the host resolves to any non-public
      address (unless ``settings.TOOLS_ALLOW_PRIVATE_NETWORKS``);
    * ``{"error": "...", "status": None}`` when the call failed: the host does not resolve, or
      a timeout, connection or protocol error.
    """
    parsed = _parse_arguments(arguments)
    if isinstance(parsed, str):
        return {"error": parsed}
    args = {**parsed, **(config or {})}

    missing = [name for name in dict.fromkeys(placeholders(tool.url_template)) if args.get(name) is None]
    if missing:
        return {"error": f"missing required argument(s) for the URL: {', '.join(missing)}"}
    used = set(placeholders(tool.url_template))
    url_text = PLACEHOLDER.sub(lambda m: _path_segment(args[m.group(1)]), tool.url_template)
    rest = {k: v for k, v in args.items() if k not in used}

    try:
        url = httpx2.URL(url_text)
        host = url.raw_host.decode("ascii")
        if url.scheme not in ("http", "https") or not host:
            raise ValueError("not an http(s) URL")
    except (httpx2.InvalidURL, ValueError, TypeError, UnicodeError):
        return {"error": "the tool's URL is invalid"}
    port = url.port or (443 if url.scheme == "https" else 80)

    timeout = float(tool.timeout_seconds)
    try:
        addresses = await asyncio.wait_for(_resolve(host, port), timeout)
    except (OSError, UnicodeError, ValueError):  # TimeoutError is an OSError
        return {"error": f"could not resolve the host {host}", "status": None}
    allowed = settings.TOOLS_ALLOW_PRIVATE_NETWORKS or (
        not _is_local_name(host) and all(map(address_is_public, addresses))
    )
    if not addresses or not allowed:
        return {"error": TARGET_NOT_ALLOWED}

    headers = {
        "User-Agent": USER_AGENT,
        **{k: v for k, v in (tool.headers or {}).items() if k.lower() != "host"},
        "Host": url.netloc.decode("ascii"),
    }
    request: dict[str, Any] = {"headers": headers}
    if ip_literal(host) is None:
        request["extensions"] = {"sni_hostname": host}
    if tool.method in (Tool.Method.GET, Tool.Method.DELETE):
        url = url.copy_merge_params(_query(rest))  # kept with any query the template has
    else:
        request["json"] = rest

    try:
        # httpx bounds each phase (connect, each read); asyncio.timeout bounds the whole call,
        # so a server that trickles bytes cannot hold a worker past the tool's timeout.
        async with (
            asyncio.timeout(timeout),
            httpx2.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        ):
            return await _send(client, tool.method, url, addresses, request)
    except (httpx2.TimeoutException, TimeoutError):
        return {"error": f"the tool did not answer within {timeout:g} s", "status": None}
    except (httpx2.HTTPError, OSError) as exc:
        return {"error": f"the tool could not be reached ({type(exc).__name__})", "status": None}


async def _send(
    client: httpx2.AsyncClient, method: str, url: httpx2.URL, addresses: list[IPAddress], request: dict
) -> dict:
    """Send to the addresses just checked, in resolver order, moving on only when one refuses the
    connection (nothing was sent yet). Connecting by address means a second DNS answer cannot swap
    in another one; the name stays in Host and, for https, in SNI and certificate verification."""
    for address in addresses[:-1]:
        try:
            return await _send_to(client, method, url.copy_with(host=str(address)), request)
        except httpx2.ConnectError:
            continue
    return await _send_to(client, method, url.copy_with(host=str(addresses[-1])), request)


async def _send_to(client: httpx2.AsyncClient, method: str, url: httpx2.URL, request: dict) -> dict:
    raw = bytearray()
    async with client.stream(method, url, **request) as response:
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > RESPONSE_LIMIT:
                break
    truncated = len(raw) > RESPONSE_LIMIT
    result: dict[str, Any] = {
        "status": response.status_code,
        "body": _body(response, bytes(raw[:RESPONSE_LIMIT]), truncated),
    }
    if truncated:
        result["truncated"] = True
    return result
