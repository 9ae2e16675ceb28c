"""Ingestion end to end: the API takes a file or text, a real Celery worker on the real broker
parses, chunks and embeds it with the local model into PostgreSQL + pgvector, and the document
reaches ``ready`` with its chunks; bad files are refused or fail with a clear error, and leave
nothing half-written.

Tests with a worker need committed data: ``django_db(transaction=True)``.
"""

from __future__ import annotations

import io

import pytest
from django.db import connection

from knowledge import index, services
from knowledge.chunking import chunk_sections
from knowledge.models import Chunk, Collection, Document, DocumentContent
from knowledge.parsing import parse
from tests.conftest import wait_for
from tests.knowledge import documents as files
from usage.models import UsageRecord

transactional = pytest.mark.django_db(transaction=True)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


WAIT = 60.0  # a worker parsing and embedding on a busy two-core machine


def wait_settled(document_id) -> Document:
    return wait_for(
        lambda: Document.objects.filter(pk=document_id, status__in=("ready", "failed")).first(),
        WAIT,
        what=f"document {document_id} to be ready or failed",
    )


@pytest.fixture
def collection(tenant) -> Collection:
    return services.collection_create(project=tenant.project, name="Help", chunk_size=60, chunk_overlap=10)


def upload(client, collection, name: str, data: bytes, content_type: str, **fields):
    body = {"file": _named(name, data, content_type), **fields}
    return client.post(f"/api/v1/collections/{collection.pk}/documents/", body, format="multipart")


def _named(name: str, data: bytes, content_type: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type=content_type)


def expected_chunks(data: bytes, mime_type: str, collection: Collection) -> int:
    """What the chunker makes of the file (the count the worker must reach)."""
    return len(chunk_sections(parse(data, mime_type), size=collection.chunk_size, overlap=collection.chunk_overlap))


FORMATS = [
    pytest.param(
        "notes.txt", "text/plain", lambda: ("First paragraph.\n\n" + "Second one, longer. " * 40).encode(), id="text"
    ),
    pytest.param("guide.md", "text/markdown", lambda: files.MARKDOWN.encode(), id="markdown"),
    pytest.param("page.html", "text/html", lambda: files.HTML.encode(), id="html"),
    pytest.param("manual.pdf", "application/pdf", lambda: files.pdf_document(files.PDF_PAGES), id="pdf"),
    pytest.param("report.docx", DOCX, files.docx_document, id="docx"),
]


@transactional
@pytest.mark.parametrize(("name", "content_type", "make"), FORMATS)
def test_a_file_is_ingested_to_ready_by_a_real_worker(tenant, collection, celery_worker, name, content_type, make):
    data = make()
    response = upload(tenant.client(), collection, name, data, content_type, title=f"The {name}")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending" and body["mime_type"] == content_type and body["size_bytes"] == len(data)
    document = wait_settled(body["id"])

    assert document.status == "ready", (document.error_code, document.error_message)
    expected = expected_chunks(data, content_type, collection)
    assert expected > 0
    assert document.chunk_count == expected == document.chunks_embedded
    chunks = Chunk.objects.filter(document=document).order_by("ordinal")
    assert [c.ordinal for c in chunks] == list(range(expected))
    assert all(c.embedding is not None and len(c.embedding) == 384 for c in chunks)
    assert document.token_count == sum(c.token_count for c in chunks) > 0
    collection.refresh_from_db()
    assert collection.embedding_dimensions == 384 and collection.embedding_model == "all-minilm-l6-v2"
    assert index.index_exists(collection.pk)
    # Every embedding call was metered, and only successful ones happened.
    rows = UsageRecord.objects.filter(project=tenant.project, operation="embedding")
    assert rows.exists() and set(rows.values_list("status", flat=True)) == {"succeeded"}
    assert sum(rows.values_list("prompt_tokens", flat=True)) > 0

    shown = tenant.client().get(f"/api/v1/documents/{document.pk}").json()
    assert shown["status"] == "ready" and shown["progress"] == {
        "chunks_done": expected,
        "chunks_total": expected,
        "percent": 100.0,
    }


@transactional
def test_pdf_pages_and_docx_headings_reach_the_chunks(tenant, collection, celery_worker):
    client = tenant.client()
    pdf = upload(client, collection, "m.pdf", files.pdf_document(files.PDF_PAGES), "application/pdf").json()
    docx = upload(client, collection, "r.docx", files.docx_document(), DOCX).json()
    wait_settled(pdf["id"]), wait_settled(docx["id"])

    pages = set(Chunk.objects.filter(document_id=pdf["id"]).values_list("metadata__page", flat=True))
    headings = set(Chunk.objects.filter(document_id=docx["id"]).values_list("metadata__heading", flat=True))
    assert pages == set(range(1, len(files.PDF_PAGES) + 1))
    assert len([h for h in headings if h]) >= 2


@transactional
def test_json_text_is_ingested(tenant, collection, celery_worker):
    response = tenant.client().post(
        f"/api/v1/collections/{collection.pk}/documents/",
        {"title": "Returns", "text": "You may return any item within 30 days of delivery.", "metadata": {"lang": "en"}},
        format="json",
    )

    assert response.status_code == 202, response.json()
    document = wait_settled(response.json()["id"])
    assert document.status == "ready" and document.source == "text" and document.chunk_count == 1
    assert Chunk.objects.get(document=document).metadata == {"lang": "en"}


# --- bad files ------------------------------------------------------------------------------


def _nothing_written(collection) -> bool:
    return not Document.objects.filter(collection=collection).exists() and not DocumentContent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content_type", "data", "code"),
    [
        pytest.param(
            "empty.txt", "text/plain", b"", "validation_error", id="empty"
        ),  # DRF: "The submitted file is empty."
        pytest.param("blank.txt", "text/plain", b"  \n\t ", "empty_document", id="whitespace"),
        pytest.param("fake.pdf", "application/pdf", b"just some text, no PDF", "type_mismatch", id="pdf-that-is-text"),
        pytest.param("x.docx", DOCX, b"plain words", "type_mismatch", id="docx-not-a-zip"),
        pytest.param("binary.txt", "text/plain", bytes(range(256)) * 4, "type_mismatch", id="binary-as-text"),
        pytest.param("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "unsupported_type", id="png"),
        pytest.param("data.xlsx", "application/octet-stream", b"PK\x03\x04zzz", "unsupported_type", id="xlsx"),
    ],
)
def test_bad_files_are_refused_with_a_clear_error_and_nothing_written(
    tenant, collection, name, content_type, data, code
):
    response = upload(tenant.client(), collection, name, data, content_type)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"] and body["request_id"]
    assert _nothing_written(collection)


@pytest.mark.django_db
def test_a_file_over_the_size_limit_is_413_and_nothing_written(tenant, collection, settings):
    settings.KNOWLEDGE_MAX_DOCUMENT_BYTES = 1000
    response = upload(tenant.client(), collection, "big.txt", b"word " * 400, "text/plain")

    assert response.status_code == 413
    assert (
        response.json()["error"]["code"] == "payload_too_large" and "1000 bytes" in response.json()["error"]["message"]
    )
    assert _nothing_written(collection)


@pytest.mark.django_db
def test_a_declared_upload_far_over_the_limit_is_refused_before_it_is_read(tenant, collection, settings):
    settings.KNOWLEDGE_MAX_DOCUMENT_BYTES = 1000
    body = io.BytesIO(b"x" * 200_000)
    response = tenant.client().generic(
        "POST",
        f"/api/v1/collections/{collection.pk}/documents/",
        body.getvalue(),
        content_type="multipart/form-data; boundary=zzz",
    )

    assert response.status_code == 413 and _nothing_written(collection)


@pytest.mark.django_db
def test_the_same_content_twice_in_a_collection_is_409_naming_the_first(tenant, collection):
    client = tenant.client()
    first = upload(client, collection, "a.txt", b"Same words here.", "text/plain").json()
    second = upload(client, collection, "b.txt", b"Same words here.", "text/plain")

    assert second.status_code == 409
    assert second.json()["error"]["code"] == "duplicate_document"
    assert second.json()["error"]["details"] == {"document_id": first["id"]}
    assert Document.objects.filter(collection=collection).count() == 1
    # Another collection takes it.
    other = services.collection_create(project=tenant.project, name="Other")
    assert upload(client, other, "a.txt", b"Same words here.", "text/plain").status_code == 202


@transactional
def test_a_corrupt_pdf_fails_with_a_reason_and_can_be_retried(tenant, collection, celery_worker):
    corrupt = b"%PDF-1.7\n" + b"\x00garbage" * 50
    response = upload(tenant.client(), collection, "broken.pdf", corrupt, "application/pdf")
    assert response.status_code == 202
    document = wait_settled(response.json()["id"])

    assert document.status == "failed" and document.error_code == "corrupt_file" and document.error_message
    assert not Chunk.objects.filter(document=document).exists()
    shown = tenant.client().get(f"/api/v1/documents/{document.pk}").json()
    assert shown["error"] == {"code": "corrupt_file", "message": document.error_message}

    # Retried from its stored bytes: it fails again the same way, one more attempt counted.
    retried = tenant.client().post(f"/api/v1/documents/{document.pk}/retry", {}, format="json")
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    document = wait_for(
        lambda: Document.objects.filter(pk=document.pk, status="failed", attempts=2).first(), WAIT, what="the retry"
    )
    assert document.error_code == "corrupt_file"


@pytest.mark.django_db
def test_only_a_failed_document_can_be_retried(tenant, collection):
    document = Document.objects.create(
        project=tenant.project, collection=collection, title="t", source="text", mime_type="text/plain", checksum="c"
    )
    response = tenant.client().post(f"/api/v1/documents/{document.pk}/retry", {}, format="json")

    assert response.status_code == 409 and response.json()["error"]["code"] == "document_not_failed"


@transactional
def test_deleting_a_document_removes_its_chunks(tenant, collection, celery_worker):
    response = upload(tenant.client(), collection, "a.md", files.MARKDOWN.encode(), "text/markdown")
    document = wait_settled(response.json()["id"])
    assert Chunk.objects.filter(document=document).exists()

    assert tenant.client().delete(f"/api/v1/documents/{document.pk}").status_code == 204
    assert not Chunk.objects.filter(document_id=document.pk).exists()
    assert not DocumentContent.objects.filter(document_id=document.pk).exists()


@transactional
def test_reembedding_a_collection_is_one_call(tenant, collection, celery_worker):
    client = tenant.client()
    ids = [
        upload(
            client, collection, f"{n}.txt", f"Document number {n}. It talks about topic {n}.".encode(), "text/plain"
        ).json()["id"]
        for n in range(3)
    ]
    for document_id in ids:
        wait_settled(document_id)
    before = UsageRecord.objects.filter(project=tenant.project, operation="embedding").count()
    old = {c.pk: list(c.embedding) for c in Chunk.objects.filter(collection=collection)}

    response = client.post(f"/api/v1/collections/{collection.pk}/reembed", {}, format="json")

    assert response.status_code == 202 and response.json()["documents_queued"] == 3
    wait_for(
        lambda: (
            Document.objects.filter(collection=collection, status="ready").count() == 3
            and not Chunk.objects.filter(collection=collection, embedding__isnull=True).exists()
        ),
        WAIT,
        what="the re-embedding",
    )
    collection.refresh_from_db()
    assert collection.embedding_version == 2 and collection.embedding_dimensions == 384
    assert UsageRecord.objects.filter(project=tenant.project, operation="embedding").count() > before
    new = {c.pk: list(c.embedding) for c in Chunk.objects.filter(collection=collection)}
    assert new.keys() == old.keys()  # the same chunks, embedded again (same model: same vectors)
    assert all(max(abs(a - b) for a, b in zip(old[k], new[k], strict=True)) < 1e-4 for k in old)


@pytest.mark.django_db
def test_reembedding_with_a_provider_that_cannot_embed_changes_nothing(tenant, collection):
    from agents.models import Provider

    provider = Provider.objects.create(project=tenant.project, name="chat-only", base_url="http://127.0.0.1:9/v1")
    response = tenant.client("admin_key").post(
        f"/api/v1/collections/{collection.pk}/reembed", {"embedding_provider": str(provider.pk)}, format="json"
    )

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "provider_not_configured"
    collection.refresh_from_db()
    assert collection.embedding_provider_id is None and collection.embedding_version == 1


@transactional
def test_a_task_delivered_twice_ingests_once(tenant, collection):
    """Both jobs run twice, one after the other (as a redelivery would): one set of chunks, and
    the second embedding finds nothing left to embed (nothing charged twice)."""
    document = services.document_create(
        collection=collection,
        data=files.MARKDOWN.encode(),
        source="upload",
        filename="a.md",
        content_type="text/markdown",
    )
    assert services.document_parse(document.pk) == "parsed"
    assert services.document_parse(document.pk) == "skipped"
    assert services.document_embed(document.pk) == "ready"
    calls = UsageRecord.objects.filter(project=tenant.project, operation="embedding").count()
    assert services.document_embed(document.pk) == "skipped"

    document.refresh_from_db()
    assert document.status == "ready" and document.chunk_count == Chunk.objects.filter(document=document).count()
    assert UsageRecord.objects.filter(project=tenant.project, operation="embedding").count() == calls


@transactional
def test_an_embedding_job_resumes_where_a_lost_worker_stopped(tenant, collection):
    document = services.document_create(
        collection=collection,
        data=files.MARKDOWN.encode(),
        source="upload",
        filename="a.md",
        content_type="text/markdown",
    )
    services.document_parse(document.pk)
    document.refresh_from_db()
    total = document.chunk_count
    assert total >= 3
    # A worker embedded the first chunk and died: the rest is done by the next, the first kept.
    first = Chunk.objects.get(document=document, ordinal=0)
    services.document_embed(document.pk, batch_size=1)  # the whole job, batch by batch
    document.refresh_from_db()
    assert document.status == "ready" and document.chunks_embedded == total
    first.refresh_from_db()
    assert first.embedding is not None
    calls = UsageRecord.objects.filter(project=tenant.project, operation="embedding")
    assert calls.count() == total  # one call per batch of one


def test_the_collection_index_is_partial_and_cast(db, tenant):
    collection = services.collection_create(project=tenant.project, name="Idx")
    index.index_ensure(collection.pk, 384)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index.index_name(collection.pk)])
        (definition,) = cursor.fetchone()

    assert "USING hnsw" in definition and "vector(384)" in definition and "vector_cosine_ops" in definition
    assert str(collection.pk) in definition  # WHERE collection_id = '<this collection>'
    index.index_drop(collection.pk)
    assert not index.index_exists(collection.pk)


# --- an OpenAI-compatible embedding provider ---------------------------------------------------


@pytest.fixture
def remote(tenant, fake_openai, fast_retries):
    from agents.models import Provider

    provider = Provider.objects.create(
        project=tenant.project,
        name="remote",
        base_url=fake_openai.base_url,
        default_embedding_model="text-embedding-3-small",
        max_retries=0,
    )
    collection = services.collection_create(project=tenant.project, name="Remote", embedding_provider=provider)
    document = services.document_create(
        collection=collection, data=b"Alpha beta.\n\nGamma delta.", source="text", title="t", content_type="text/plain"
    )
    services.document_parse(document.pk)
    return provider, collection, document


@pytest.mark.django_db
def test_an_openai_compatible_provider_embeds_and_is_metered(tenant, fake_openai, remote):
    provider, collection, document = remote

    assert services.document_embed(document.pk) == "ready"

    collection.refresh_from_db()
    assert collection.embedding_model == "text-embedding-3-small" and collection.embedding_dimensions == 3
    (call,) = [r for r in fake_openai.requests if r.path.endswith("/embeddings")]
    assert call.body["model"] == "text-embedding-3-small" and call.body["input"] == ["Alpha beta.\n\nGamma delta."]
    row = UsageRecord.objects.get(project=tenant.project, operation="embedding")
    assert row.provider_id == provider.pk and row.provider_kind == "openai" and row.prompt_tokens == 4


@pytest.mark.django_db
def test_an_upstream_429_leaves_the_document_to_be_retried_and_a_400_fails_it(tenant, fake_openai, remote):
    from agents.providers.base import ProviderRateLimited
    from tests.fake_openai import Fail

    _, _, document = remote
    fake_openai.script(Fail(429, retry_after=1))
    with pytest.raises(ProviderRateLimited):  # the task retries it later, with backoff
        services.document_embed(document.pk)
    document.refresh_from_db()
    assert document.status == "embedding" and document.chunks_embedded == 0
    assert services.document_embed(document.pk) == "ready"  # the retry

    other = services.document_create(
        collection=document.collection, data=b"Other words.", source="text", title="o", content_type="text/plain"
    )
    services.document_parse(other.pk)
    fake_openai.script(Fail(400, message="input too long"))
    assert services.document_embed(other.pk) == "failed"
    other.refresh_from_db()
    assert other.status == "failed" and other.error_code == "provider_rejected_request" and other.error_message
    failed = UsageRecord.objects.filter(project=tenant.project, operation="embedding", status="failed")
    assert failed.count() == 2 and all(r.total_tokens == 0 for r in failed)
