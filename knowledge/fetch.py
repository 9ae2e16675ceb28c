"""Fetching a document from a URL, with the same guard as HTTP tools: the host must resolve to
public addresses only (unless ``TOOLS_ALLOW_PRIVATE_NETWORKS``), the connection goes to the
address just checked (a second DNS answer cannot swap in another), redirects are followed by
hand and each hop is checked again, and the body is bounded in size and time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx2
from django.conf import settings

from agents.tools import USER_AGENT, _is_local_name, _resolve, address_is_public, ip_literal
from config.exceptions import DomainError, PayloadTooLarge

MAX_REDIRECTS = 5


class FetchError(DomainError):
    code = "fetch_failed"
    message = "The document could not be fetched."


@dataclass
class Fetched:
    url: str
    content: bytes
    content_type: str
    filename: str


def _filename(url: httpx2.URL) -> str:
    return url.path.rstrip("/").rsplit("/", 1)[-1][:255]


async def _checked(url: httpx2.URL) -> tuple[list, str]:
    host = url.raw_host.decode("ascii") if url.raw_host else ""
    if url.scheme not in ("http", "https") or not host:
        raise FetchError("Only http(s) URLs can be fetched.", code="invalid_url")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await asyncio.wait_for(_resolve(host, port), 10)
    except (OSError, UnicodeError, ValueError) as exc:
        raise FetchError(f"The host {host} could not be resolved.") from exc
    allowed = settings.TOOLS_ALLOW_PRIVATE_NETWORKS or (
        not _is_local_name(host) and all(map(address_is_public, addresses))
    )
    if not addresses or not allowed:
        raise FetchError(
            "This address may not be fetched (private, loopback or link-local).", code="target_not_allowed"
        )
    return addresses, host


async def fetch(url_text: str, *, limit: int, timeout: float = 20.0) -> Fetched:
    try:
        url = httpx2.URL(url_text)
    except (httpx2.InvalidURL, TypeError, UnicodeError) as exc:
        raise FetchError("The URL is invalid.", code="invalid_url") from exc
    try:
        async with (
            asyncio.timeout(timeout),
            httpx2.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
        ):
            for _ in range(MAX_REDIRECTS + 1):
                addresses, host = await _checked(url)
                request = {"headers": {"User-Agent": USER_AGENT, "Host": url.netloc.decode("ascii")}}
                if ip_literal(host) is None:
                    request["extensions"] = {"sni_hostname": host}
                async with client.stream("GET", url.copy_with(host=str(addresses[0])), **request) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = url.join(response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise FetchError(f"The server answered {response.status_code}.")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise PayloadTooLarge(f"The document is larger than the limit of {limit} bytes.")
                    content_type = response.headers.get("content-type", "").split(";")[0].strip()
                    return Fetched(str(url), bytes(body), content_type, _filename(url))
            raise FetchError(f"More than {MAX_REDIRECTS} redirects.")
    except (httpx2.TimeoutException, TimeoutError) as exc:
        raise FetchError(f"The server did not answer within {timeout:g} s.") from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise FetchError(f"The server could not be reached ({type(exc).__name__}).") from exc
