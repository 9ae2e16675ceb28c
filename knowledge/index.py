"""One HNSW index per collection, over the one chunks table.

``knowledge_chunk.embedding`` is an untyped ``vector``: a collection's vectors all have its
model's dimension, and its index is a partial expression index::

    CREATE INDEX chunk_hnsw_<collection> ON knowledge_chunk
        USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE collection_id = '<collection>'

A search that says ``WHERE collection_id = '<collection>' ORDER BY embedding::vector(384) <=> …``
matches that predicate and expression, so it walks only its own collection's graph (search.py
keeps to that shape; a test reads the plan). The cast also guards the data: a vector of another
dimension cannot enter a collection's rows while its index exists.

Indexes are made the first time a collection's vectors are written (the dimension is known
then) and dropped when the collection is re-embedded or deleted. Outside a transaction they
are built ``CONCURRENTLY``, so a new collection's index never blocks ingestion elsewhere.
"""

from __future__ import annotations

import zlib

from django.conf import settings
from django.db import connection

from knowledge.models import MAX_INDEXED_DIMENSIONS

TABLE = "knowledge_chunk"
_version: tuple[int, ...] | None = None  # pgvector's, read once per process


def index_name(collection_id) -> str:
    return f"chunk_hnsw_{str(collection_id).replace('-', '')}"


def _dimensions(dimensions: int) -> int:
    dimensions = int(dimensions)
    if not 0 < dimensions <= MAX_INDEXED_DIMENSIONS:
        raise ValueError(f"vectors of {dimensions} dimensions cannot be indexed (1 to {MAX_INDEXED_DIMENSIONS})")
    return dimensions


def _lock_key(collection_id) -> int:
    return zlib.crc32(f"knowledge-index:{collection_id}".encode()) - 2**31


def _index_state(collection_id) -> tuple[str, bool] | None:
    """The collection's index definition and whether it is valid (a ``CONCURRENTLY`` build that
    was interrupted leaves an invalid one behind), or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            [index_name(collection_id)],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def index_exists(collection_id) -> bool:
    return _index_state(collection_id) is not None


def index_ensure(collection_id, dimensions: int) -> bool:
    """Make sure the collection has a valid index for vectors of ``dimensions``; True if this
    call built one. An index for another dimension (a re-embedding with another model, where an
    old job raced the drop) or an invalid one is replaced. Checked against the catalog every
    time (a cheap read, once per batch): another process may have dropped it."""
    dimensions = _dimensions(dimensions)
    name = index_name(collection_id)
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY "
    # Serialised per collection: two workers embedding two documents would otherwise race.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_lock_key(collection_id)])
        try:
            state = _index_state(collection_id)
            if state is not None and state[1] and f"::vector({dimensions}))" in state[0]:
                return False
            if state is not None:
                cursor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")
            if not concurrently:
                # Inside a transaction, PostgreSQL builds no index over rows with foreign-key
                # checks still pending (Django defers them): run those checks now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            # An HNSW graph built within this memory is built fast; past it, much slower.
            scope = "LOCAL " if connection.in_atomic_block else ""
            cursor.execute(f"SET {scope}maintenance_work_mem = %s", [settings.KNOWLEDGE_INDEX_BUILD_MEMORY])
            cursor.execute(
                f"CREATE INDEX {concurrently}{name} ON {TABLE} "
                f"USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops) "
                "WHERE collection_id = %s",
                [str(collection_id)],
            )
            return True
        finally:
            if not connection.in_atomic_block:
                cursor.execute("RESET maintenance_work_mem")
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_key(collection_id)])


def index_drop(collection_id) -> None:
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY "
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {concurrently}IF EXISTS {index_name(collection_id)}")


def _pgvector_version() -> tuple[int, ...]:
    global _version
    if _version is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        _version = tuple(int(part) for part in row[0].split(".")[:3] if part.isdigit()) if row else ()
    return _version


def search_settings(*, filtered: bool = False) -> None:
    """Per-transaction settings of a vector search, in one round trip: a filtered search keeps
    walking the graph (iterative scans, pgvector ≥ 0.8; older versions return fewer rows) until
    it has its k rows, and looks at more candidates per step, since most fail the filter."""
    assert connection.in_atomic_block, "search settings are SET LOCAL: call inside transaction.atomic()"
    ef_search = str(int(settings.KNOWLEDGE_EF_SEARCH_FILTERED if filtered else settings.KNOWLEDGE_EF_SEARCH))
    with connection.cursor() as cursor:
        if _pgvector_version() >= (0, 8):
            cursor.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', %s, true)",
                [ef_search],
            )
        else:
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [ef_search])
