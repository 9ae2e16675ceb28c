"""The embedded default provider: SmolLM2-135M-Instruct run by llama.cpp, for real.

The model answers real prompts in a few tokens (temperature 0, max_tokens 8) to keep CI quick;
it is loaded once for the whole session (the adapter's process-wide singleton).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from agents.providers import gateway, local, local_embeddings
from agents.providers.base import ChatRequest, ProviderNotConfigured, ProviderRejected
from agents.providers.local import LocalAdapter
from agents.providers.registry import target_for
from tests.conftest import run_async
from usage.models import UsageRecord
from usage.services import CallContext

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "The weather in a city", "parameters": {"type": "object"}},
}


def short_request(text: str = "What is the capital of France?", **overrides) -> ChatRequest:
    fields = {"messages": [{"role": "user", "content": text}], "model": "smollm2", "max_tokens": 8, "temperature": 0}
    return ChatRequest(**{**fields, **overrides})


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == local.STREAM_THREAD_NAME and t.is_alive()]


def wait_until(condition, timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_chat_answers_a_real_prompt_with_reported_usage():
    # Tools are ignored (SmolLM2-135M cannot call them), never an error.
    result = run_async(LocalAdapter().chat, short_request(tools=[WEATHER_TOOL], tool_choice="auto"))

    assert result.content.strip()
    assert result.model == "smollm2"
    assert result.finish_reason in ("stop", "length")
    assert result.tool_calls == []
    assert result.usage.prompt_tokens > 0
    assert 1 <= result.usage.completion_tokens <= 8
    assert result.usage.estimated is False


def test_stream_yields_token_chunks_then_the_finish_reason_and_usage():
    async def collect():
        return [chunk async for chunk in LocalAdapter().stream(short_request())]

    chunks = run_async(collect)

    texts = [c.content for c in chunks if c.content]
    assert len(texts) >= 2 and "".join(texts).strip()
    assert chunks[-2].finish_reason in ("stop", "length")
    usage = chunks[-1].usage
    assert usage is not None and usage.estimated is False
    assert usage.prompt_tokens > 0 and usage.completion_tokens == len(texts) <= 8
    assert all(c.model == "smollm2" for c in chunks)


def test_the_streamed_prompt_count_matches_what_llama_cpp_reports():
    request = short_request(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    chat = run_async(LocalAdapter().chat, request)

    async def last_usage():
        return [c async for c in LocalAdapter().stream(request)][-1].usage

    assert run_async(last_usage).prompt_tokens == chat.usage.prompt_tokens


@pytest.mark.django_db
def test_the_deployment_default_without_openai_settings_is_local_and_writes_one_free_record(settings, tenant):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    settings.DEFAULT_CHAT_MODEL = "smollm2"
    target = target_for(None)
    assert isinstance(target.adapter, LocalAdapter) and target.model == "smollm2"
    ctx = CallContext(project_id=tenant.project.pk, request_id="req-local")

    result = run_async(gateway.chat, ctx, target, short_request())

    assert result.content.strip()
    record = UsageRecord.objects.get()
    assert record.provider_kind == "local" and record.model == "smollm2" and record.operation == "chat"
    assert record.status == "succeeded" and record.usage_estimated is False
    assert record.prompt_tokens == result.usage.prompt_tokens > 0
    assert record.completion_tokens == result.usage.completion_tokens
    assert record.cost == Decimal(0)


def test_a_consumer_that_stops_early_stops_the_generation(caplog):
    caplog.set_level(logging.DEBUG, logger="agents.providers.local")
    # Unstopped, a thousand tokens take the model many seconds.
    request = short_request("Write a very long story about a dragon and a knight.", max_tokens=1000)

    async def first_chunk_then_hang_up():
        chunks = LocalAdapter().stream(request)
        async for chunk in chunks:
            break
        await chunks.aclose()
        return chunk

    first = run_async(first_chunk_then_hang_up)

    assert first.content
    assert wait_until(lambda: not stream_threads()), "the generating thread outlived its consumer"
    assert wait_until(lambda: not local._generation_lock.locked())
    stopped = [r for r in caplog.records if r.getMessage().startswith("local stream stopped by its consumer")]
    assert len(stopped) == 1 and stopped[0].args[0] < 1000


def test_the_model_is_loaded_once_per_process():
    run_async(LocalAdapter().chat, short_request(max_tokens=2))
    first = id(local._llm)
    run_async(LocalAdapter().chat, short_request(max_tokens=2))

    assert first == id(local._llm) == id(local.load_model())


def test_models_and_embeddings():
    assert run_async(LocalAdapter().models) == ["smollm2", "all-minilm-l6-v2"]
    with pytest.raises(ProviderRejected):  # the chat model does not embed
        run_async(LocalAdapter().embed, ["hello"], "smollm2")

    result = run_async(LocalAdapter().embed, ["a cat sits on the mat", "a kitten on a rug", "tax law"], "")

    assert result.model == "all-minilm-l6-v2" and len(result.vectors) == 3
    assert all(len(v) == 384 for v in result.vectors)
    assert abs(sum(x * x for x in result.vectors[0]) - 1) < 1e-4  # normalised
    similarity = [sum(a * b for a, b in zip(result.vectors[0], v, strict=True)) for v in result.vectors[1:]]
    assert similarity[0] > similarity[1] + 0.2  # meaning, not letters
    assert result.usage.prompt_tokens >= 3 * 3 and not result.usage.estimated
    loaded = local_embeddings._model
    run_async(LocalAdapter().embed, ["again"], "all-MiniLM-L6-v2")  # an alias of the same model
    assert local_embeddings._model is loaded  # loaded once per process


def test_a_model_path_setting_that_names_no_file_is_a_configuration_error(settings, tmp_path):
    settings.LOCAL_CHAT_MODEL_PATH = str(tmp_path / "missing.gguf")
    with pytest.raises(ProviderNotConfigured):
        local.model_path()
    settings.LOCAL_CHAT_MODEL_PATH = ""
    assert local.model_path().endswith("SmolLM2-135M-Instruct.Q4_1.gguf")


def test_nothing_outside_the_providers_package_imports_llama_cpp():
    root = Path(__file__).resolve().parents[2]
    importing = re.compile(r"^\s*(?:from|import)\s+llama_cpp\b", re.MULTILINE)
    skip = {".venv", "venv", "node_modules", ".git", ".data"}
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if not skip.intersection(path.relative_to(root).parts)
        and path.relative_to(root).parts[:2] != ("agents", "providers")
        and importing.search(path.read_text(errors="ignore"))
    ]
    assert offenders == []
