"""Collections, documents and the ingestion pipeline.

A document is accepted in one transaction (its row and its bytes; the type checked, the
checksum unique in its collection), then two Celery jobs make it searchable:

1. ``knowledge.document_parse`` (default queue): claims the document (pending → parsing), parses
   and chunks it, and writes all its chunks in one transaction (parsing → embedding).
2. ``knowledge.document_embed`` (LLM queue): embeds the chunks that have no vector yet, a batch
   per model call (metered like any call), writing each batch and the progress
   (``chunks_embedded`` / ``chunk_count``) as it goes; then embedding → ready.

Both are safe to run twice or after a lost worker: parsing starts over (replacing the chunks);
embedding resumes at the first chunk without a vector, one runner per document (an advisory
lock held for the task), and a vector made for an older model (``embedding_version``) is never
written. A failure leaves the document ``failed`` with a code and a message; ``document_retry``
starts it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from contextlib import contextmanager
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from agents.models import Provider
from agents.providers import gateway
from agents.providers.base import ProviderError
from config.exceptions import Conflict, DomainError, PayloadTooLarge
from knowledge import index
from knowledge.chunking import chunk_sections
from knowledge.models import Chunk, Collection, Document, DocumentContent
from knowledge.parsing import ParseError, detect_type, parse
from knowledge.search import embedding_target, vector_literal
from usage.services import CallContext

logger = logging.getLogger(__name__)

Status = Document.Status
# Documents in these states have work queued or under way.
IN_PROGRESS = (Status.PENDING, Status.PARSING, Status.EMBEDDING)
# A chunk's own metadata, beside its document's (which it copies).
CHUNK_KEYS = ("heading", "page")


# --- collections ----------------------------------------------------------------------------


def _default_provider(project_id) -> Provider | None:
    return Provider.objects.filter(project_id=project_id, is_default=True).first()


def _pin_model(collection: Collection) -> None:
    """Fix the collection's provider and model when it is made (or re-embedded): the project's
    default provider changing later must not change the model its vectors came from."""
    if collection.embedding_provider_id is None:
        collection.embedding_provider = _default_provider(collection.project_id)
    collection.embedding_model = embedding_target(collection).model


def collection_create(*, project, **fields) -> Collection:
    collection = Collection(project=project, **fields)
    _pin_model(collection)
    collection.save(force_insert=True)
    return collection


def collection_delete(*, collection: Collection) -> None:
    """Delete the collection with its documents and chunks; its index goes once this commits
    (``index_drop_on_delete``, which also serves cascades: a project's deletion, the admin)."""
    with transaction.atomic():
        collection.delete()


def index_drop_on_delete(sender, instance: Collection, **kwargs) -> None:
    """Signal receiver (post_delete of a collection): drop its index after the commit."""
    collection_id = instance.pk
    transaction.on_commit(lambda: index.index_drop(collection_id))


def collection_reembed(*, collection: Collection, embedding_provider=..., embedding_model: str = "") -> int:
    """Embed every chunk of ``collection`` again (after a model change, say): one call.

    ``embedding_provider`` (a Provider, or None for the project's default) and
    ``embedding_model`` change the model; with neither, the same model embeds again. The
    chunks stay; their vectors are cleared, the old index dropped, and each document's
    embedding job queued. Returns the number of documents queued.
    """
    if embedding_provider not in (..., None) and embedding_provider.project_id != collection.project_id:
        raise DomainError("No such provider in this project.", code="validation_error")
    with transaction.atomic():
        collection = Collection.objects.select_for_update().get(pk=collection.pk)
        if embedding_provider is not ...:
            collection.embedding_provider = embedding_provider
            collection.embedding_model = embedding_model
        elif embedding_model:
            collection.embedding_model = embedding_model
        if not collection.embedding_model:
            _pin_model(collection)
        embedding_target(collection)  # a provider that cannot embed fails here, before any change
        collection.embedding_dimensions = None
        collection.embedding_version += 1
        collection.save()
        Chunk.objects.filter(collection_id=collection.pk).update(embedding=None)
        queued = list(
            Document.objects.filter(
                collection_id=collection.pk, status__in=(Status.READY, Status.EMBEDDING)
            ).values_list("pk", flat=True)
        )
        Document.objects.filter(pk__in=queued).update(
            status=Status.EMBEDDING, chunks_embedded=0, ready_at=None, updated_at=timezone.now()
        )
        transaction.on_commit(lambda: index.index_drop(collection.pk))
        for document_id in queued:
            transaction.on_commit(lambda d=document_id: _enqueue_embed(d))
    return len(queued)


# --- documents ------------------------------------------------------------------------------


def document_create(
    *,
    collection: Collection,
    data: bytes,
    source: str,
    title: str = "",
    filename: str = "",
    content_type: str | None = None,
    source_url: str = "",
    metadata: dict | None = None,
) -> Document:
    """Accept a document: checked, stored with its bytes, and queued for parsing on commit."""
    limit = settings.KNOWLEDGE_MAX_DOCUMENT_BYTES
    if len(data) > limit:
        raise PayloadTooLarge(f"The document is {len(data)} bytes; the limit is {limit} bytes.")
    try:
        mime_type = detect_type(filename or title, content_type, data[:4096])
    except ParseError as exc:
        raise DomainError(exc.message, code=exc.code) from exc
    if not data.strip():
        raise DomainError("The document is empty.", code="empty_document")
    checksum = hashlib.sha256(data).hexdigest()
    with transaction.atomic():
        existing = Document.objects.filter(collection_id=collection.pk, checksum=checksum).only("pk", "title").first()
        if existing is not None:
            raise Conflict(
                f"This collection already has this document ('{existing.title}').",
                code="duplicate_document",
                details={"document_id": str(existing.pk)},
            )
        document = Document.objects.create(
            project_id=collection.project_id,
            collection=collection,
            title=(title or filename or "Untitled")[:300],
            source=source,
            source_url=source_url,
            filename=filename[:255],
            mime_type=mime_type,
            size_bytes=len(data),
            checksum=checksum,
            metadata=metadata or {},
        )
        DocumentContent.objects.create(document=document, data=data)
        transaction.on_commit(lambda: _enqueue_parse(document.pk))
    return document


def document_retry(*, document: Document) -> Document:
    """Start a failed document again from its stored bytes."""
    with transaction.atomic():
        updated = Document.objects.filter(pk=document.pk, status=Status.FAILED).update(
            status=Status.PENDING, error_code="", error_message="", updated_at=timezone.now()
        )
        if not updated:
            raise Conflict("Only a failed document can be retried.", code="document_not_failed")
        transaction.on_commit(lambda: _enqueue_parse(document.pk))
    document.refresh_from_db()
    return document


def document_update(*, document: Document, title: str | None = None, metadata: dict | None = None) -> Document:
    """Rename a document or replace its metadata; its chunks carry that metadata (search
    filters read it there) beside their own ``CHUNK_KEYS``."""
    with transaction.atomic():
        if title is not None:
            document.title = title
        if metadata is not None:
            document.metadata = metadata
        document.save(update_fields=["title", "metadata", "updated_at"])
        if metadata is not None:
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    UPDATE knowledge_chunk SET metadata = %s::jsonb || (
                        SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
                        FROM jsonb_each(metadata) WHERE key = ANY(%s))
                    WHERE document_id = %s
                    """,
                    [json.dumps(metadata), list(CHUNK_KEYS), str(document.pk)],
                )
    return document


# --- the jobs -------------------------------------------------------------------------------


def _enqueue(task, document_id, queue: str) -> None:
    try:
        task.apply_async(args=[str(document_id)], queue=queue)
    except Exception:
        logger.exception("could not enqueue ingestion of document %s", document_id)
        document_fail(document_id, "queue_unavailable", "The document could not be queued; retry it.")


def _enqueue_parse(document_id) -> None:
    from knowledge.tasks import document_parse

    _enqueue(document_parse, document_id, settings.CELERY_TASK_DEFAULT_QUEUE)


def _enqueue_embed(document_id) -> None:
    from knowledge.tasks import document_embed

    _enqueue(document_embed, document_id, settings.CELERY_LLM_QUEUE)


def document_fail(document_id, code: str, message: str) -> None:
    Document.objects.filter(pk=document_id).exclude(status=Status.READY).update(
        status=Status.FAILED, error_code=code[:64], error_message=message[:2000], updated_at=timezone.now()
    )


def document_parse(document_id) -> str:
    """Parse and chunk a document; queue its embedding. Returns what happened."""
    claimed = Document.objects.filter(pk=document_id, status__in=(Status.PENDING, Status.PARSING)).update(
        status=Status.PARSING, attempts=F("attempts") + 1, error_code="", error_message="", updated_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    document = Document.objects.select_related("collection", "content").get(pk=document_id)
    collection = document.collection
    try:
        sections = parse(bytes(document.content.data), document.mime_type)
        drafts = chunk_sections(sections, size=collection.chunk_size, overlap=collection.chunk_overlap)
    except ParseError as exc:
        document_fail(document_id, exc.code, exc.message)
        return "failed"
    if not drafts:
        document_fail(document_id, "empty_document", "The document has no text to index.")
        return "failed"
    chunks = [
        Chunk(
            project_id=document.project_id,
            collection_id=collection.pk,
            document_id=document.pk,
            ordinal=ordinal,
            text=draft.text,
            token_count=draft.token_count,
            metadata={
                **document.metadata,
                **{k: v for k, v in draft.metadata.items() if k in CHUNK_KEYS and v not in (None, "")},
            },
        )
        for ordinal, draft in enumerate(drafts)
    ]
    with transaction.atomic():
        # Still ours (not deleted, not failed by someone else): then replace any earlier chunks.
        if not Document.objects.select_for_update().filter(pk=document_id, status=Status.PARSING).exists():
            return "skipped"
        Chunk.objects.filter(document_id=document_id).delete()
        Chunk.objects.bulk_create(chunks, batch_size=500)
        Document.objects.filter(pk=document_id).update(
            status=Status.EMBEDDING,
            chunk_count=len(chunks),
            chunks_embedded=0,
            token_count=sum(c.token_count for c in chunks),
            updated_at=timezone.now(),
        )
        transaction.on_commit(lambda: _enqueue_embed(document_id))
    return "parsed"


@contextmanager
def _document_lock(document_id):
    """One embedding runner per document, across workers: a session advisory lock (released
    when the task ends, or by PostgreSQL if the worker dies)."""
    key = zlib.crc32(f"knowledge-embed:{document_id}".encode()) - 2**31
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


class _Stale(Exception):
    """The collection was re-embedded (or deleted) under this job."""


def document_embed(document_id, *, batch_size: int | None = None) -> str:
    """Embed the document's chunks that have no vector, batch by batch; then mark it ready."""
    size = batch_size or settings.KNOWLEDGE_EMBEDDING_BATCH_SIZE
    with _document_lock(document_id) as acquired:
        if not acquired:
            return "busy"
        document = Document.objects.select_related("collection__embedding_provider").filter(pk=document_id).first()
        if document is None or document.status != Status.EMBEDDING:
            return "skipped"
        collection = document.collection
        version = collection.embedding_version
        ctx = CallContext(project_id=document.project_id, extra={"document_id": str(document_id)})
        target = embedding_target(collection)
        try:
            while True:
                batch = list(
                    Chunk.objects.filter(document_id=document_id, embedding__isnull=True)
                    .order_by("ordinal")
                    .values_list("pk", "text")[:size]
                )
                if not batch:
                    break
                result = async_to_sync(gateway.embed)(ctx, target, [text for _, text in batch])
                _write_batch(document_id, collection, version, [pk for pk, _ in batch], result.vectors)
        except _Stale:
            return "stale"
        except ProviderError as exc:
            if exc.retryable:
                raise
            document_fail(document_id, exc.code, exc.message)
            return "failed"
        except DomainError as exc:
            document_fail(document_id, exc.code, exc.message)
            return "failed"
        done = Document.objects.filter(pk=document_id, status=Status.EMBEDDING).update(
            status=Status.READY, ready_at=timezone.now(), updated_at=timezone.now()
        )
        return "ready" if done else "skipped"


def _write_batch(document_id, collection: Collection, version: int, ids: list, vectors: list[list[float]]) -> None:
    if len(vectors) != len(ids):
        raise DomainError("The embedding model returned a wrong number of vectors.", code="embedding_mismatch")
    dims = {len(v) for v in vectors}
    if len(dims) != 1:
        raise DomainError("The embedding model returned vectors of different sizes.", code="embedding_mismatch")
    (dimensions,) = dims
    # The collection learns its dimension from its first vectors, and gets its index then.
    Collection.objects.filter(pk=collection.pk, embedding_version=version, embedding_dimensions__isnull=True).update(
        embedding_dimensions=dimensions
    )
    current = Collection.objects.filter(pk=collection.pk).values("embedding_version", "embedding_dimensions").first()
    if current is None or current["embedding_version"] != version:
        raise _Stale
    if current["embedding_dimensions"] != dimensions:
        raise DomainError(
            f"The model made {dimensions}-dimension vectors; this collection holds "
            f"{current['embedding_dimensions']}. Re-embed the collection to change its model.",
            code="dimension_mismatch",
        )
    index.index_ensure(collection.pk, dimensions)
    with transaction.atomic():
        # The version re-read under a share lock: a re-embedding waits for this batch, or this
        # batch sees it and writes nothing.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM knowledge_collection WHERE id = %s AND embedding_version = %s FOR SHARE",
                [str(collection.pk), version],
            )
            if cursor.fetchone() is None:
                raise _Stale
            cursor.execute(
                """
                UPDATE knowledge_chunk AS c SET embedding = v.embedding::vector
                FROM (SELECT unnest(%s::uuid[]) AS id, unnest(%s::text[]) AS embedding) AS v
                WHERE c.id = v.id AND c.document_id = %s AND c.embedding IS NULL
                """,
                [[str(i) for i in ids], [vector_literal(v) for v in vectors], str(document_id)],
            )
        Document.objects.filter(pk=document_id).update(
            chunks_embedded=Chunk.objects.filter(document_id=document_id, embedding__isnull=False).count(),
            updated_at=timezone.now(),
        )


def documents_resume_stale(*, older_than_seconds: int = 15 * 60) -> int:
    """Beat: queue again documents whose job was lost (no progress for a while)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = list(
        Document.objects.filter(Q(status__in=IN_PROGRESS) & Q(updated_at__lt=cutoff)).values_list("pk", "status")[:500]
    )
    for document_id, status in stale:
        Document.objects.filter(pk=document_id).update(updated_at=timezone.now())
        if status == Status.EMBEDDING:
            _enqueue_embed(document_id)
        else:
            _enqueue_parse(document_id)
    return len(stale)
