"""What every provider adapter speaks: plain dataclasses in, plain dataclasses out.

Adapters never touch the database; the gateway does the bookkeeping around them.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from rest_framework import status

from config.exceptions import DomainError


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.estimated or other.estimated,
        )

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "estimated": self.estimated,
        }


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    stop: list[str] | None = None
    top_p: float | None = None
    user: str | None = None


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it

    def as_openai(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ChatResult:
    content: str
    model: str
    finish_reason: str = "stop"
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@dataclass
class ChatChunk:
    """One streamed piece: text, tool-call fragments, a finish reason, or (last) the usage."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI delta fragments
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str = ""


@dataclass
class EmbeddingResult:
    vectors: list[list[float]]
    model: str
    usage: Usage = field(default_factory=Usage)


class Adapter(Protocol):
    kind: str

    async def chat(self, request: ChatRequest) -> ChatResult: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]: ...

    async def embed(self, texts: list[str], model: str) -> EmbeddingResult: ...

    async def models(self) -> list[str]: ...


def estimate_tokens(text: str) -> int:
    """Rough count for when a provider reports none (about four characters a token)."""
    return math.ceil(len(text) / 4) if text else 0


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages)


# --- errors: what an upstream failure becomes in our API -----------------------------------


class ProviderError(DomainError):
    status_code = status.HTTP_502_BAD_GATEWAY
    code = "provider_error"
    message = "The model provider failed to answer."
    retryable = False


class ProviderAuthFailed(ProviderError):
    code = "provider_auth_failed"
    message = "The model provider refused our credentials; check the provider's API key."


class ProviderRateLimited(ProviderError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "provider_rate_limited"
    message = "The model provider is rate limiting us; try again later."
    retryable = True

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.details = {**self.details, "retry_after": math.ceil(retry_after)}


class ProviderTimeout(ProviderError):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    code = "provider_timeout"
    message = "The model provider did not answer in time."
    retryable = True


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"
    message = "The model provider is unavailable."
    retryable = True


class ProviderRejected(ProviderError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "provider_rejected_request"
    message = "The model provider rejected the request."


class ProviderNotConfigured(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "provider_not_configured"
    message = "No model provider is configured for this project."
