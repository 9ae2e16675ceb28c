"""Search over a project's collections: by meaning (pgvector), by keywords (PostgreSQL full
text), or both fused by reciprocal rank (RRF, k = 60).

- **vector**: the query is embedded with each collection's own model (through the gateway, so it
  is metered), then each collection's HNSW index is walked (see ``knowledge.index``: the SQL
  keeps the index's predicate and expression so the planner uses it). Iterative scans keep a
  filtered search going until it has its k rows. Score: cosine similarity, 1 - distance.
- **keyword**: the question's words, stemmed, any of them (a question rarely contains *all* the
  words of its answer), ranked by ``ts_rank`` normalised by chunk length. Score: that rank.
- **hybrid**: each method's top candidates (``CANDIDATES_PER_METHOD`` or more), fused: a chunk
  scores Σ 1 / (60 + its rank in each list).

``score_threshold`` applies to the result's ``score`` in the mode used. Filters narrow every
method alike: ``documents`` (ids) and ``metadata`` (key → value, matched against the chunk's
metadata, which carries its document's metadata and its heading and page). Every query names
the project as well as the collection: ids from another project match nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection, transaction

from agents.providers import gateway
from agents.providers.registry import Target
from knowledge.index import search_settings
from knowledge.models import Chunk, Collection, SearchMode
from usage.services import CallContext

RRF_K = 60
CANDIDATES_PER_METHOD = 50
MAX_TOP_K = 100


@dataclass
class Hit:
    chunk_id: object
    collection_id: object
    score: float = 0.0
    vector_score: float | None = None
    keyword_score: float | None = None
    vector_rank: int | None = None
    keyword_rank: int | None = None
    # Filled from the database for the results kept:
    document_id: object = None
    document_title: str = ""
    ordinal: int = 0
    text: str = ""
    metadata: dict = field(default_factory=dict)

    def citation(self) -> dict:
        return {
            "document": {"id": str(self.document_id), "title": self.document_title},
            "chunk_id": str(self.chunk_id),
            "collection_id": str(self.collection_id),
            "ordinal": self.ordinal,
            "score": round(self.score, 6),
        }


@dataclass
class Query:
    text: str
    top_k: int = 5
    mode: str = SearchMode.HYBRID
    score_threshold: float | None = None
    documents: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def embedding_target(collection: Collection) -> Target:
    """The model a collection's vectors (and its queries) are made with."""
    from agents.providers.registry import target_for

    return target_for(collection.embedding_provider, collection.embedding_model, embedding=True)


async def aquery_vectors(ctx: CallContext, collections: list[Collection], text: str) -> dict[object, list[float]]:
    """The query embedded once per distinct model among ``collections`` (each call metered)."""
    by_model: dict[tuple, list[Collection]] = defaultdict(list)
    for collection in collections:
        if collection.embedding_dimensions:  # nothing embedded yet: nothing to search by meaning
            by_model[(collection.embedding_provider_id, collection.embedding_model)].append(collection)
    vectors: dict[object, list[float]] = {}
    for group in by_model.values():
        result = await gateway.embed(ctx, embedding_target(group[0]), [text])
        for collection in group:
            vectors[collection.pk] = result.vectors[0]
    return vectors


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def _filters(query: Query) -> tuple[str, list]:
    sql, params = "", []
    if query.documents:
        sql += " AND c.document_id = ANY(%s::uuid[])"
        params.append([str(d) for d in query.documents])
    if query.metadata:
        sql += " AND c.metadata @> %s::jsonb"
        params.append(json.dumps(query.metadata))
    return sql, params


def _vector_candidates(collection: Collection, vector: list[float], query: Query, limit: int) -> list[tuple]:
    dims = int(collection.embedding_dimensions)
    if len(vector) != dims:  # the model changed under a collection being re-embedded
        return []
    extra, params = _filters(query)
    literal = vector_literal(vector)
    # The predicate (collection_id = <constant>) and the expression (embedding::vector(N)) are
    # those of the collection's partial index; relaxed-order results are re-sorted outside.
    # Only ints and our own fragments are formatted in; values are parameters.
    sql = f"""
        WITH nearest AS MATERIALIZED (
            SELECT c.id, c.embedding::vector({dims}) <=> %s::vector({dims}) AS distance
            FROM knowledge_chunk c
            WHERE c.collection_id = %s AND c.project_id = %s AND c.embedding IS NOT NULL{extra}
            ORDER BY c.embedding::vector({dims}) <=> %s::vector({dims})
            LIMIT %s
        )
        SELECT id, distance FROM nearest ORDER BY distance, id
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [literal, str(collection.pk), str(collection.project_id), *params, literal, limit])
        return [(row[0], 1.0 - float(row[1])) for row in cursor.fetchall()]


def _keyword_candidates(collection: Collection, query: Query, limit: int) -> list[tuple]:
    extra, params = _filters(query)
    # plainto_tsquery stems the words and drops stop words; joined with OR instead of AND.
    sql = f"""
        SELECT c.id, ts_rank(c.search_vector, q.query, 1) AS rank
        FROM knowledge_chunk c,
             (SELECT to_tsquery('simple', replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')) AS query) q
        WHERE c.collection_id = %s AND c.project_id = %s AND c.search_vector @@ q.query{extra}
        ORDER BY rank DESC, c.id
        LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [query.text, str(collection.pk), str(collection.project_id), *params, limit])
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


def rank(collections: list[Collection], query: Query, vectors: dict[object, list[float]]) -> list[Hit]:
    """The top hits of ``collections`` for ``query``, with the query vectors already made."""
    top_k = max(1, min(query.top_k, MAX_TOP_K))
    depth = top_k if query.mode != SearchMode.HYBRID else max(top_k, CANDIDATES_PER_METHOD)
    hits: dict[object, Hit] = {}
    vector_list: list[tuple] = []
    keyword_list: list[tuple] = []
    with transaction.atomic():
        if query.mode in (SearchMode.VECTOR, SearchMode.HYBRID):
            search_settings(filtered=bool(query.documents or query.metadata))
            for collection in collections:
                if collection.pk in vectors:
                    found = _vector_candidates(collection, vectors[collection.pk], query, depth)
                    vector_list += [(chunk_id, score, collection.pk) for chunk_id, score in found]
        if query.mode in (SearchMode.KEYWORD, SearchMode.HYBRID):
            for collection in collections:
                found = _keyword_candidates(collection, query, depth)
                keyword_list += [(chunk_id, score, collection.pk) for chunk_id, score in found]
    vector_list.sort(key=lambda row: -row[1])
    keyword_list.sort(key=lambda row: -row[1])
    for position, (chunk_id, score, collection_id) in enumerate(vector_list[:depth], start=1):
        hits[chunk_id] = Hit(chunk_id, collection_id, vector_score=score, vector_rank=position)
    for position, (chunk_id, score, collection_id) in enumerate(keyword_list[:depth], start=1):
        hit = hits.setdefault(chunk_id, Hit(chunk_id, collection_id))
        hit.keyword_score, hit.keyword_rank = score, position
    for hit in hits.values():
        if query.mode == SearchMode.VECTOR:
            hit.score = hit.vector_score or 0.0
        elif query.mode == SearchMode.KEYWORD:
            hit.score = hit.keyword_score or 0.0
        else:
            hit.score = sum(1.0 / (RRF_K + r) for r in (hit.vector_rank, hit.keyword_rank) if r is not None)
    ordered = sorted(hits.values(), key=lambda h: (-h.score, str(h.chunk_id)))
    if query.score_threshold is not None:
        ordered = [h for h in ordered if h.score >= query.score_threshold]
    ordered = ordered[:top_k]
    _fill(ordered)
    return ordered


def _fill(hits: list[Hit]) -> None:
    """Text, metadata and document title of the hits kept, in one query."""
    if not hits:
        return
    rows = Chunk.objects.filter(pk__in=[h.chunk_id for h in hits]).values(
        "id", "ordinal", "text", "metadata", "document_id", "document__title"
    )
    by_id = {row["id"]: row for row in rows}
    for hit in hits:
        row = by_id[hit.chunk_id]
        hit.ordinal, hit.text, hit.metadata = row["ordinal"], row["text"], row["metadata"]
        hit.document_id, hit.document_title = row["document_id"], row["document__title"]


def _needs_vectors(query: Query) -> bool:
    return query.mode in (SearchMode.VECTOR, SearchMode.HYBRID)


def search(ctx: CallContext, collections: list[Collection], query: Query) -> list[Hit]:
    vectors = async_to_sync(aquery_vectors)(ctx, collections, query.text) if _needs_vectors(query) else {}
    return rank(collections, query, vectors)


async def asearch(ctx: CallContext, collections: list[Collection], query: Query) -> list[Hit]:
    vectors = await aquery_vectors(ctx, collections, query.text) if _needs_vectors(query) else {}
    return await sync_to_async(rank)(collections, query, vectors)
