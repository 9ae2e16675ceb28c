"""Search: vector, keyword and hybrid modes over real embeddings (the local model), filters,
thresholds, the per-collection index and its iterative scans, and isolation between
collections and projects (hand-made ids included)."""

from __future__ import annotations

import random
import uuid

import psycopg
import pytest
from django.db import connection, transaction

from knowledge import index, search, services
from knowledge.models import Chunk, Collection, Document
from tests.knowledge.factories import CollectionFactory, DocumentFactory
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

ARTICLES = {
    "Returns": "You may send back any item within 30 days of delivery for a full refund. "
    "Items must be unused and in their original packaging.",
    "Shipping": "Parcels leave our warehouse within two business days. Express delivery arrives the next day "
    "in most cities.",
    "Passwords": "To reset your password, open the login page and choose 'Forgot password'. A link valid for "
    "one hour is e-mailed to you.",
    "Invoices": "Invoices are issued on the first of each month and can be downloaded as PDF from the billing page.",
}


def ingest(collection: Collection, title: str, text: str, metadata: dict | None = None) -> Document:
    """Through the real pipeline, run inline (the worker's jobs are the same functions)."""
    document = services.document_create(
        collection=collection,
        data=text.encode(),
        source=Document.Source.TEXT,
        title=title,
        content_type="text/plain",
        metadata=metadata,
    )
    assert services.document_parse(document.pk) == "parsed"
    assert services.document_embed(document.pk) == "ready"
    document.refresh_from_db()
    return document


@pytest.fixture
def help_center(tenant) -> Collection:
    collection = services.collection_create(project=tenant.project, name="Help center")
    for title, text in ARTICLES.items():
        ingest(collection, title, text, {"team": "billing" if title == "Invoices" else "support"})
    return collection


def search_titles(client, collection, **body) -> list[str]:
    response = client.post(f"/api/v1/collections/{collection.pk}/search", body, format="json")
    assert response.status_code == 200, response.json()
    return [r["document"]["title"] for r in response.json()["results"]]


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_each_mode_finds_the_article_that_answers(tenant, help_center, mode):
    client = tenant.client("read_key")
    query = "I forgot my password, how do I reset it?" if mode == "keyword" else "I can't log in any more"
    assert search_titles(client, help_center, query=query, mode=mode, top_k=2)[0] == "Passwords"


def test_the_result_shape(tenant, help_center):
    response = tenant.client().post(
        f"/api/v1/collections/{help_center.pk}/search",
        {"query": "refund for a returned item", "top_k": 3},
        format="json",
    )

    body = response.json()
    assert body["count"] == len(body["results"]) == 3 and body["next"] is None and body["mode"] == "hybrid"
    first = body["results"][0]
    assert first["position"] == 1 and first["document"]["title"] == "Returns"
    assert first["text"].startswith("You may send back") and first["collection"] == str(help_center.pk)
    assert set(first["scores"]) == {"vector", "keyword", "vector_rank", "keyword_rank"}
    assert first["scores"]["vector"] > 0.3 and first["scores"]["vector_rank"] == 1
    assert first["score"] == pytest.approx(sum(1 / (60 + r) for r in (1, first["scores"]["keyword_rank"]) if r))
    assert [r["position"] for r in body["results"]] == [1, 2, 3]
    assert body["results"][0]["score"] >= body["results"][1]["score"] >= body["results"][2]["score"]


def test_the_query_embedding_is_metered_to_the_caller(tenant, help_center):
    tenant.client("read_key").post(f"/api/v1/collections/{help_center.pk}/search", {"query": "refund"}, format="json")

    row = UsageRecord.objects.filter(project=tenant.project, operation="embedding").latest("created_at")
    assert row.api_key_id == tenant.read_key.pk and row.status == "succeeded" and row.prompt_tokens > 0


def test_keyword_mode_embeds_nothing(tenant, help_center):
    before = UsageRecord.objects.count()
    titles = search_titles(tenant.client(), help_center, query="invoices billing page", mode="keyword")
    assert titles[0] == "Invoices" and UsageRecord.objects.count() == before


def test_top_k_threshold_and_filters(tenant, help_center):
    client = tenant.client()
    assert len(search_titles(client, help_center, query="delivery", mode="vector", top_k=1)) == 1
    assert search_titles(client, help_center, query="delivery", mode="vector", score_threshold=0.99) == []
    billing = search_titles(
        client, help_center, query="delivery", mode="vector", filter={"metadata": {"team": "billing"}}
    )
    assert billing == ["Invoices"]
    shipping = Document.objects.get(collection=help_center, title="Shipping")
    only = search_titles(client, help_center, query="password", filter={"documents": [str(shipping.pk)]})
    assert only == ["Shipping"]


def test_collection_defaults_apply(tenant, help_center):
    help_center.default_top_k, help_center.default_mode = 1, "keyword"
    help_center.save()
    response = tenant.client().post(
        f"/api/v1/collections/{help_center.pk}/search", {"query": "password"}, format="json"
    )
    assert response.json()["mode"] == "keyword" and response.json()["count"] == 1


def test_a_search_never_leaves_its_collection_or_project(tenant, other_tenant, help_center):
    mine_elsewhere = services.collection_create(project=tenant.project, name="Other collection")
    elsewhere = ingest(mine_elsewhere, "Password policy", "Passwords must be reset every ninety days.")
    theirs_collection = services.collection_create(project=other_tenant.project, name="Theirs")
    theirs = ingest(theirs_collection, "Their passwords", "Reset your password from the password page.")
    client = tenant.client()

    for mode in ("vector", "keyword", "hybrid"):
        titles = search_titles(client, help_center, query="reset password", mode=mode, top_k=20)
        assert titles and set(titles) <= set(ARTICLES), mode
    # Hand-made filters naming other collections' documents find nothing.
    for document in (elsewhere, theirs):
        assert search_titles(client, help_center, query="password", filter={"documents": [str(document.pk)]}) == []
    # Their collection is a 404 to us.
    response = client.post(f"/api/v1/collections/{theirs_collection.pk}/search", {"query": "password"}, format="json")
    assert response.status_code == 404
    # And the service refuses to cross projects even when handed their collection with our id.
    forged = Collection.objects.get(pk=theirs_collection.pk)
    forged.project_id = tenant.project.pk
    assert search.rank([forged], search.Query("password", mode="keyword"), {}) == []


def test_searching_several_collections(tenant, other_tenant, help_center):
    manuals = services.collection_create(project=tenant.project, name="Manuals")
    ingest(manuals, "Printer manual", "To change the toner, open the front cover and pull the cartridge out.")
    theirs = CollectionFactory(project=other_tenant.project)
    client = tenant.client()

    everything = client.post("/api/v1/collections/search", {"query": "replace the toner cartridge"}, format="json")
    assert everything.status_code == 200
    assert everything.json()["results"][0]["document"]["title"] == "Printer manual"
    one = client.post(
        "/api/v1/collections/search",
        {"query": "replace the toner cartridge", "collections": [str(help_center.pk)]},
        format="json",
    )
    assert "Printer manual" not in [r["document"]["title"] for r in one.json()["results"]]
    for foreign in (theirs.pk, uuid.uuid4()):
        response = client.post(
            "/api/v1/collections/search", {"query": "toner", "collections": [str(foreign)]}, format="json"
        )
        assert response.status_code == 400 and "collections" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": ""},
        {"query": "x", "mode": "fuzzy"},
        {"query": "x", "top_k": 0},
        {"query": "x", "top_k": 1000},
        {"query": "x", "top_k": "many"},
        {"query": "x", "score_threshold": "high"},
        {"query": "x", "filter": {"metadata": {"team": ["a", "b"]}}},
        {"query": "x", "filter": {"documents": ["not-a-uuid"]}},
        {"query": "x", "filter": {"tags": ["a"]}},
        {"query": "x", "unknown": 1},
        {"query": "x" * 5000},
    ],
)
def test_bad_search_bodies_are_400(tenant, body):
    collection = CollectionFactory(project=tenant.project)
    response = tenant.client().post(f"/api/v1/collections/{collection.pk}/search", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "validation_error"


def test_a_collection_with_nothing_embedded_answers_empty(tenant):
    collection = CollectionFactory(project=tenant.project)
    response = tenant.client().post(f"/api/v1/collections/{collection.pk}/search", {"query": "x"}, format="json")
    assert response.status_code == 200 and response.json()["results"] == []


# --- the index --------------------------------------------------------------------------------


def _random_unit(rng: random.Random, dims: int = 384) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(dims)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


def _fill_random(collection: Collection, n: int, rng: random.Random, *, rare_every: int = 0) -> None:
    document = DocumentFactory(collection=collection, status=Document.Status.READY)
    chunks = [
        Chunk(
            project_id=collection.project_id,
            collection=collection,
            document=document,
            ordinal=i,
            text=f"chunk {i}",
            embedding=_random_unit(rng),
            metadata={"rare": True} if rare_every and i % rare_every == 0 else {},
        )
        for i in range(n)
    ]
    Chunk.objects.bulk_create(chunks)
    collection.embedding_dimensions = 384
    collection.save()
    index.index_ensure(collection.pk, 384)


def test_a_vector_search_walks_its_own_collections_index(tenant):
    rng = random.Random(7)
    collection = CollectionFactory(project=tenant.project)
    other = CollectionFactory(project=tenant.project)
    _fill_random(collection, 50, rng)
    _fill_random(other, 50, rng)
    query = search.Query("q", top_k=5, mode="vector")
    sql_seen = []

    def explain(execute, sql, params, many, context):
        if "WITH nearest" in sql:
            # Client-side binding, as Django's own cursors: the plan sees the same literals.
            with psycopg.ClientCursor(context["connection"].connection) as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("SET LOCAL enable_sort = off")
                cursor.execute("EXPLAIN " + sql, params)
                sql_seen.append("\n".join(row[0] for row in cursor.fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        hits = search.rank([collection], query, {collection.pk: _random_unit(rng)})

    assert len(hits) == 5 and {h.collection_id for h in hits} == {collection.pk}
    assert index.index_name(collection.pk) in sql_seen[0]
    assert index.index_name(other.pk) not in sql_seen[0]


def test_a_filtered_search_still_returns_k_results(tenant):
    """1 chunk in 50 matches the filter: without iterative scans the index's first
    ``ef_search`` candidates would hold about two of them."""
    rng = random.Random(11)
    collection = CollectionFactory(project=tenant.project)
    _fill_random(collection, 2000, rng, rare_every=50)
    query = search.Query("q", top_k=10, mode="vector", metadata={"rare": True})

    with transaction.atomic():
        with connection.cursor() as cursor:
            # As on a large table: the HNSW index gives the order (not a scan of the collection + sort).
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
        hits = search.rank([collection], query, {collection.pk: _random_unit(rng)})

    assert len(hits) == 10 and all(h.metadata == {"rare": True} for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_an_index_for_another_dimension_or_an_invalid_one_is_replaced(tenant):
    collection = CollectionFactory(project=tenant.project)

    assert index.index_ensure(collection.pk, 8) is True
    assert index.index_ensure(collection.pk, 8) is False  # there, valid, right dimension
    assert index.index_ensure(collection.pk, 16) is True
    definition, valid = index._index_state(collection.pk)
    assert "vector(16)" in definition and valid
    with connection.cursor() as cursor:  # as an interrupted CREATE INDEX CONCURRENTLY leaves it
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [index.index_name(collection.pk)]
        )
    assert index.index_ensure(collection.pk, 16) is True
    assert index._index_state(collection.pk)[1] is True
