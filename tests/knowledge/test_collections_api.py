"""Collections through the API: defaults, what may change after creation, counts, deletion."""

from __future__ import annotations

import pytest

from agents.models import Provider
from knowledge import index
from knowledge.models import Collection
from tests.knowledge.factories import CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db


def test_a_collection_needs_only_a_name_and_pins_its_model(tenant):
    response = tenant.client("write_key").post("/api/v1/collections/", {"name": "Help"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["embedding_provider"] is None and body["embedding_model"] == "all-minilm-l6-v2"
    assert body["embedding_dimensions"] is None and body["chunk_size"] == 200 and body["default_mode"] == "hybrid"
    assert body["document_counts"] == {"pending": 0, "parsing": 0, "embedding": 0, "ready": 0, "failed": 0}


def test_the_project_default_provider_is_pinned_when_created(tenant, fake_openai):
    provider = Provider.objects.create(
        project=tenant.project,
        name="up",
        base_url=fake_openai.base_url,
        default_embedding_model="text-embedding-3-small",
        is_default=True,
    )
    body = tenant.client().post("/api/v1/collections/", {"name": "Remote"}, format="json").json()
    assert body["embedding_provider"] == str(provider.pk) and body["embedding_model"] == "text-embedding-3-small"

    chat_only = Provider.objects.create(project=tenant.project, name="chat", base_url=fake_openai.base_url)
    refused = tenant.client().post(
        "/api/v1/collections/", {"name": "No model", "embedding_provider": str(chat_only.pk)}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "provider_not_configured"
    assert not Collection.objects.filter(name="No model").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"name": "x", "chunk_size": 5}, "chunk_size"),
        ({"name": "x", "default_mode": "magic"}, "default_mode"),
        ({"name": "x", "default_top_k": 0}, "default_top_k"),
        ({"name": "x", "embedding_dimensions": 384}, "embedding_dimensions"),
        ({"name": "x", "metadata": [1]}, "metadata"),
    ],
)
def test_bad_collections_are_400(tenant, body, field):
    response = tenant.client().post("/api/v1/collections/", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["details"]


def test_names_are_unique_per_project(tenant, other_tenant):
    CollectionFactory(project=tenant.project, name="Help")
    CollectionFactory(project=other_tenant.project, name="Same")
    assert tenant.client().post("/api/v1/collections/", {"name": "Help"}, format="json").status_code == 400
    assert tenant.client().post("/api/v1/collections/", {"name": "Same"}, format="json").status_code == 201


def test_the_model_and_chunking_cannot_be_patched(tenant):
    collection = CollectionFactory(project=tenant.project)
    client = tenant.client()

    renamed = client.patch(f"/api/v1/collections/{collection.pk}", {"name": "New", "default_top_k": 8}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "New" and renamed.json()["default_top_k"] == 8
    for field, value in (("embedding_model", "other"), ("chunk_size", 300)):
        response = client.patch(f"/api/v1/collections/{collection.pk}", {field: value}, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["details"]


def test_document_counts_in_the_list_take_one_query(tenant, django_assert_max_num_queries):
    for n in range(4):
        collection = CollectionFactory(project=tenant.project)
        DocumentFactory(collection=collection, status="ready")
        DocumentFactory.create_batch(n, collection=collection, status="failed")
    client = tenant.client("read_key")

    with django_assert_max_num_queries(6):  # key, collections, count, document counts
        body = client.get("/api/v1/collections/").json()

    assert sorted(c["document_counts"]["failed"] for c in body["results"]) == [0, 1, 2, 3]


@pytest.mark.parametrize("how", ["api", "project"])
def test_deleting_a_collection_drops_its_documents_and_its_index(tenant, django_capture_on_commit_callbacks, how):
    collection = CollectionFactory(project=tenant.project)
    document = DocumentFactory(collection=collection)
    index.index_ensure(collection.pk, 8)

    with django_capture_on_commit_callbacks(execute=True):
        if how == "api":
            assert tenant.client("admin_key").delete(f"/api/v1/collections/{collection.pk}").status_code == 204
        else:
            tenant.project.delete()  # a cascade

    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert not type(document).objects.filter(pk=document.pk).exists()
    assert not index.index_exists(collection.pk)


def test_only_admins_delete_or_reembed_collections(tenant):
    collection = CollectionFactory(project=tenant.project)
    writer = tenant.client("write_key")
    assert writer.delete(f"/api/v1/collections/{collection.pk}").status_code == 403
    assert writer.post(f"/api/v1/collections/{collection.pk}/reembed", {}, format="json").status_code == 403
    assert (
        tenant.client("read_key")
        .post(f"/api/v1/collections/{collection.pk}/search", {"query": "x", "mode": "keyword"}, format="json")
        .status_code
        == 200
    )


def test_a_provider_that_collections_embed_with_cannot_be_deleted(tenant, fake_openai):
    provider = Provider.objects.create(
        project=tenant.project, name="up", base_url=fake_openai.base_url, default_embedding_model="e"
    )
    CollectionFactory(project=tenant.project, embedding_provider=provider)

    response = tenant.client("admin_key").delete(f"/api/v1/providers/{provider.pk}")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "in_use" and response.json()["error"]["details"] == {
        "used_by": ["collections"]
    }
    assert Provider.objects.filter(pk=provider.pk).exists()
