"""The Django admin for knowledge: pages render with counts and progress, search and filters
work, the re-embed and retry actions go through the services, chunks are read-only."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from knowledge.models import Chunk, Collection, Document
from tests.knowledge.factories import CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("root@example.com", "a sturdy passphrase 42"))
    return client


@pytest.fixture
def library(tenant):
    collection = CollectionFactory(project=tenant.project, name="Manuals")
    ready = DocumentFactory(
        collection=collection, title="Printer guide", status="ready", chunk_count=2, chunks_embedded=2
    )
    failed = DocumentFactory(collection=collection, title="Broken scan", status="failed", error_code="corrupt_file")
    DocumentFactory(collection=collection, title="Being read", status="embedding", chunk_count=10, chunks_embedded=4)
    for ordinal in range(2):
        Chunk.objects.create(
            project=tenant.project, collection=collection, document=ready, ordinal=ordinal, text=f"toner part {ordinal}"
        )
    return collection, ready, failed


def url(model, view: str, *args) -> str:
    return reverse(f"admin:knowledge_{model._meta.model_name}_{view}", args=args)


def test_collections_list_their_document_counts_in_one_query_per_page(staff, library):
    CollectionFactory.create_batch(5)
    with CaptureQueriesContext(connection) as queries:
        response = staff.get(url(Collection, "changelist"))

    assert response.status_code == 200
    row = next(r for r in response.context["cl"].result_list if r.name == "Manuals")
    assert (row.n_total, row.n_ready, row.n_progress, row.n_failed) == (3, 1, 1, 1)
    assert len(queries) < 12  # not one per collection
    assert staff.get(url(Collection, "changelist"), {"q": "Manu"}).context["cl"].result_count == 1


def test_documents_show_progress_and_filter_by_status(staff, library):
    response = staff.get(url(Document, "changelist"), {"status__exact": "embedding"})

    assert response.status_code == 200 and b"4/10" in response.content
    assert [d.title for d in response.context["cl"].result_list] == ["Being read"]
    assert staff.get(url(Document, "change", library[2].pk)).status_code == 200


def test_the_retry_action_requeues_failed_documents_only(staff, library, django_capture_on_commit_callbacks):
    _, ready, failed = library

    with django_capture_on_commit_callbacks() as queued:  # the jobs, sent once this commits
        response = staff.post(
            url(Document, "changelist"),
            {"action": "retry_selected", "_selected_action": [str(ready.pk), str(failed.pk)], "index": 0},
            follow=True,
        )

    assert response.status_code == 200
    failed.refresh_from_db()
    ready.refresh_from_db()
    assert failed.status == "pending" and failed.error_code == "" and ready.status == "ready"
    assert len(queued) == 1
    messages = [str(m) for m in response.context["messages"]]
    assert any("Retried 1" in m for m in messages) and any("Printer guide" in m for m in messages)


def test_the_reembed_action_clears_vectors_and_requeues(staff, library, django_capture_on_commit_callbacks):
    collection, ready, _ = library

    with django_capture_on_commit_callbacks() as queued:
        response = staff.post(
            url(Collection, "changelist"),
            {"action": "reembed_selected", "_selected_action": [str(collection.pk)], "index": 0},
            follow=True,
        )

    assert response.status_code == 200
    collection.refresh_from_db()
    ready.refresh_from_db()
    assert collection.embedding_version == 2 and ready.status == "embedding" and ready.chunks_embedded == 0
    assert Document.objects.filter(collection=collection, status="embedding").count() == 2
    assert len(queued) == 1 + 2  # the old index dropped, then one embedding job per document


def test_chunks_are_read_only_and_searchable(staff, library):
    chunk = Chunk.objects.first()
    assert staff.get(url(Chunk, "changelist"), {"q": "toner"}).context["cl"].result_count == 2
    assert staff.get(url(Chunk, "change", chunk.pk)).status_code == 200
    assert staff.get(url(Chunk, "add")).status_code == 403
    staff.post(url(Chunk, "change", chunk.pk), {"text": "changed"})
    chunk.refresh_from_db()
    assert chunk.text.startswith("toner part")


def test_collections_and_documents_are_added_through_the_api_not_here(staff):
    assert staff.get(url(Collection, "add")).status_code == 403
    assert staff.get(url(Document, "add")).status_code == 403
