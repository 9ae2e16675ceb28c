"""Ingestion speed against the embedding model's own speed, on the same texts.

Corpus: the topics of the Python language reference that ship with CPython
(``pydoc_data.topics``), as documents of one collection, parsed and chunked by the pipeline.
Then, in alternation (model, pipeline, model, pipeline), on the very same chunk texts:

- **model**: ``SentenceTransformer.encode`` of all chunks (batch 64, normalised), nothing else;
- **pipeline**: ``knowledge.services.document_embed`` for every document (what the Celery
  job runs): batches through the gateway (metered: one usage row per batch), the vectors
  written to PostgreSQL, the collection's HNSW index maintained, the progress updated.

It prints chunks per second of each, and their ratio (target: pipeline >= 0.8 of the model).
Parsing and chunking are timed too, apart. Runs on the embedded PostgreSQL under ``.data/bench``;
the bench project is deleted at the end. ``--repeat 1`` for a quick look.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_setup, stop_embedded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="rounds of (model, pipeline)")
    parser.add_argument("--chunk-size", type=int, default=200)
    args = parser.parse_args(argv)
    django_setup(unset=("OPENAI_API_KEY", "OPENAI_BASE_URL"))  # the local model

    from pydoc_data.topics import topics

    from agents.providers import local_embeddings
    from knowledge import services
    from knowledge.models import Chunk, Document
    from projects.models import Project
    from usage.models import UsageRecord

    project = Project.objects.create(name=f"bench-ingest-{uuid.uuid4().hex[:6]}")
    try:
        model = local_embeddings.load_model()
        local_embeddings.encode(["warm up"] * 64)
        texts_by_round: list[list[str]] = []
        model_rates, pipeline_rates, parse_seconds = [], [], []
        for round_no in range(args.repeat):
            collection = services.collection_create(
                project=project, name=f"reference-{round_no}", chunk_size=args.chunk_size, chunk_overlap=40
            )
            unique = {text: key for key, text in topics.items()}  # some topics share a text
            documents = [
                services.document_create(
                    collection=collection, data=text.encode(), source="text", title=key, content_type="text/plain"
                )
                for text, key in unique.items()
            ]
            started = time.perf_counter()
            for document in documents:
                services.document_parse(document.pk)
            parse_seconds.append(time.perf_counter() - started)
            texts = list(
                Chunk.objects.filter(collection=collection)
                .order_by("document", "ordinal")
                .values_list("text", flat=True)
            )
            texts_by_round.append(texts)

            started = time.perf_counter()
            model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            model_rates.append(len(texts) / (time.perf_counter() - started))

            started = time.perf_counter()
            for document in documents:
                assert services.document_embed(document.pk) == "ready"
            pipeline_rates.append(len(texts) / (time.perf_counter() - started))

            ready = Document.objects.filter(collection=collection, status="ready").count()
            assert ready == len(documents), f"{ready} of {len(documents)} documents ready"
            assert not Chunk.objects.filter(collection=collection, embedding__isnull=True).exists()

        n = len(texts_by_round[0])
        calls = UsageRecord.objects.filter(project=project, operation="embedding").count()
        print(
            f"corpus: {len(topics)} topics of pydoc_data.topics -> {len(documents)} documents, {n} chunks "
            f"(chunk size {args.chunk_size}, overlap 40); {calls} metered embedding calls in all"
        )
        print(f"torch threads: {__import__('torch').get_num_threads()}; rounds: {args.repeat}")
        print()
        print("| | chunks/s per round | median |")
        print("|---|---|---:|")
        for label, rates in (("model (encode only)", model_rates), ("pipeline (document_embed)", pipeline_rates)):
            print(f"| {label} | {' / '.join(f'{r:.1f}' for r in rates)} | {statistics.median(rates):.1f} |")
        ratio = statistics.median(pipeline_rates) / statistics.median(model_rates)
        print()
        print(f"pipeline / model: {ratio:.3f} (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")
        print(f"parse + chunk: {statistics.median(parse_seconds):.2f} s for the {len(documents)} documents")
        return 0
    finally:
        project.delete()  # its collections' indexes go with them (knowledge.apps)
        stop_embedded()


if __name__ == "__main__":
    sys.exit(main())
