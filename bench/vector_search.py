"""What the project's vector search costs and finds, against exact search in the same run.

Data: 384-dimension chunks, random but clustered as embeddings are (2000 centres, each chunk a
centre plus noise, normalised; uniform random vectors have no neighbours worth the name): one
collection of ``--large`` (100 000) chunks and ``--small``
(50 000) spread over 49 small collections, in the one chunks table, each collection with its own
partial HNSW index (knowledge.index). Queries: chunks of the collection plus noise.

For the large collection and for the small ones it prints p50/p95 latency of

- **search**: ``knowledge.search.rank`` in vector mode, top 10 (the API's code path without
  HTTP and without embedding the query): its transaction, iterative-scan settings, the HNSW
  walk of the collection's own index, and the fetch of the results' text and documents;
- **exact**: the same query with index scans off (every chunk of the collection compared);

and recall@10 of search against exact, how often fewer than 10 results came back (also for a
filtered search that 1 chunk in 20 matches), and the index build times.

Runs on the embedded PostgreSQL under ``.data/bench`` (like gateway_overhead.py); the bench
project is deleted at the end. ``python bench/vector_search.py --large 20000 --small 10000`` for
a quick look.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import django_setup, stop_embedded

DIMS = 384
SMALL_COLLECTIONS = 49
TOP_K = 10


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def with_noise(rng: np.random.Generator, points: np.ndarray, noise: float) -> np.ndarray:
    """``points`` moved by random vectors of length about ``noise``, normalised again."""
    moved = points + rng.normal(0, noise / DIMS**0.5, points.shape).astype(np.float32)
    return moved / np.linalg.norm(moved, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int, noise: float) -> np.ndarray:
    return with_noise(rng, centres[rng.integers(0, len(centres), n)], noise)


def load(collection, document, vectors: np.ndarray, rare_every: int) -> None:
    """COPY the chunks in (text format; the generated full-text column fills itself)."""
    from django.db import connection

    buffer = io.StringIO()
    for i, v in enumerate(vectors):
        metadata = '{"rare": true}' if i % rare_every == 0 else "{}"
        vector = "[" + ",".join(f"{x:.6f}" for x in v) + "]"
        now = "2026-01-01 00:00:00+00"
        row = [str(uuid.uuid4()), now, now, str(collection.project_id), str(collection.pk), str(document.pk)]
        buffer.write("\t".join([*row, str(i), f"chunk {i}", "1", vector, metadata]) + "\n")
    columns = (
        "id, created_at, updated_at, project_id, collection_id, document_id, ordinal, text, token_count, "
        "embedding, metadata"
    )
    with connection.cursor() as cursor, cursor.copy(f"COPY knowledge_chunk ({columns}) FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def exact(collection, query: np.ndarray, metadata: dict | None) -> list:
    from django.db import connection, transaction

    literal = "[" + ",".join(repr(float(x)) for x in query) + "]"
    extra = " AND metadata @> %s::jsonb" if metadata else ""
    params = [str(collection.pk), *(['{"rare": true}'] if metadata else []), literal, TOP_K]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")  # no HNSW: every chunk compared
        cursor.execute(
            f"SELECT id FROM knowledge_chunk WHERE collection_id = %s{extra} "  # noqa: S608 - fixed fragments
            f"ORDER BY embedding::vector({DIMS}) <=> %s::vector({DIMS}) LIMIT %s",
            params,
        )
        return [row[0] for row in cursor.fetchall()]


def measure(label: str, collections: list, queries: dict, metadata: dict | None) -> dict:
    from knowledge import search

    latencies, exact_latencies, recalls, short = [], [], [], 0
    for collection in collections:
        for q in queries[collection.pk]:
            query = search.Query("", top_k=TOP_K, mode="vector", metadata=metadata or {})
            started = time.perf_counter()
            hits = search.rank([collection], query, {collection.pk: q.tolist()})
            latencies.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            truth = exact(collection, q, metadata)
            exact_latencies.append((time.perf_counter() - started) * 1000)
            found = {h.chunk_id for h in hits}
            recalls.append(len(found & set(truth)) / len(truth))
            short += len(hits) < TOP_K
    return {
        "label": label,
        "n": len(latencies),
        "search": (percentile(latencies, 50), percentile(latencies, 95)),
        "exact": (percentile(exact_latencies, 50), percentile(exact_latencies, 95)),
        "recall": statistics.mean(recalls),
        "short": short,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=100_000, help="chunks of the large collection")
    parser.add_argument("--small", type=int, default=50_000, help="chunks spread over the 49 small collections")
    parser.add_argument("--queries", type=int, default=200, help="queries on the large collection")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    django_setup()

    from django.db import connection

    from knowledge import index
    from knowledge.models import Collection, Document
    from projects.models import Project

    rng = np.random.default_rng(args.seed)
    centres = rng.normal(0, 1, (2000, DIMS)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    project = Project.objects.create(name=f"bench-vectors-{uuid.uuid4().hex[:6]}")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            version = cursor.fetchone()[0]
        print(f"PostgreSQL {connection.pg_version // 10000}, pgvector {version}; {DIMS} dimensions, top {TOP_K}")

        def make(name: str, n: int) -> tuple:
            collection = Collection.objects.create(project=project, name=name, embedding_dimensions=DIMS)
            document = Document.objects.create(
                project=project, collection=collection, title=name, source="text", mime_type="text/plain", checksum=name
            )
            # Noise of length 0.6 around unit centres: chunks of a cluster are ~0.7 apart in cosine
            # similarity, as texts on one subject are with embedding models.
            vectors = clustered(rng, centres, n, noise=0.6)
            load(collection, document, vectors, rare_every=20)
            return collection, vectors

        started = time.perf_counter()
        large, large_vectors = make("large", args.large)
        per_small = args.small // SMALL_COLLECTIONS
        smalls = [make(f"small-{i}", per_small) for i in range(SMALL_COLLECTIONS)]
        print(f"loaded {args.large + per_small * SMALL_COLLECTIONS} chunks in {time.perf_counter() - started:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE knowledge_chunk")

        started = time.perf_counter()
        index.index_ensure(large.pk, DIMS)
        large_build = time.perf_counter() - started
        started = time.perf_counter()
        for collection, _ in smalls:
            index.index_ensure(collection.pk, DIMS)
        small_build = time.perf_counter() - started
        print(
            f"index build: large {large_build:.1f} s ({args.large} chunks); 49 small {small_build:.1f} s in all "
            f"({small_build / SMALL_COLLECTIONS * 1000:.0f} ms each, {per_small} chunks)"
        )

        def queries_for(vectors: np.ndarray, n: int) -> list[np.ndarray]:
            return list(with_noise(rng, vectors[rng.integers(0, len(vectors), n)], 0.5))

        large_queries = {large.pk: queries_for(large_vectors, args.queries)}
        per_small_queries = max(1, args.queries // SMALL_COLLECTIONS)
        small_queries = {c.pk: queries_for(v, per_small_queries) for c, v in smalls}
        small_collections = [c for c, _ in smalls]
        measure("warm-up", [large], {large.pk: large_queries[large.pk][:20]}, None)

        results = [
            measure("large", [large], large_queries, None),
            measure("large, filtered 1 in 20", [large], large_queries, {"rare": True}),
            measure("small (49)", small_collections, small_queries, None),
            measure("small, filtered 1 in 20", small_collections, small_queries, {"rare": True}),
        ]
        print()
        header = ["collection", "queries", "search p50 / p95 ms", "exact p50 / p95 ms", "search p95 / exact p95"]
        print("| " + " | ".join([*header, "recall@10", "< 10 results"]) + " |")
        print("|---|---:|---|---|---:|---:|---:|")
        for r in results:
            ratio = r["search"][1] / r["exact"][1]
            print(
                f"| {r['label']} | {r['n']} | {r['search'][0]:.2f} / {r['search'][1]:.2f} | "
                f"{r['exact'][0]:.2f} / {r['exact'][1]:.2f} | {ratio:.2f} | {r['recall']:.3f} | {r['short']} |"
            )
        large = results[0]
        recall_ok = all(r["recall"] >= 0.95 for r in results if "filtered" not in r["label"])
        filtered_recall = min(r["recall"] for r in results if "filtered" in r["label"])
        print()
        print(f"recall@10 >= 0.95 (unfiltered): {'met' if recall_ok else 'NOT met'}; filtered: {filtered_recall:.3f}")
        print(f"k results always returned: {'met' if all(r['short'] == 0 for r in results) else 'NOT met'}")
        ratio = large["search"][1] / large["exact"][1]
        print(f"large p95 <= exact p95 / 5: {'met' if ratio <= 0.2 else 'NOT met'} ({ratio:.2f})")
        return 0
    finally:
        project.delete()  # its collections' indexes go with them (knowledge.apps)
        stop_embedded()


if __name__ == "__main__":
    sys.exit(main())
