"""Routes of the knowledge API. Plain routes: documents are created under their collection and
read at ``documents/{id}``, and ``collections/search`` sits beside the collection ids."""

from django.urls import re_path

from knowledge import views

_UUID = r"(?P<pk>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"

collections = views.CollectionViewSet
documents = views.DocumentViewSet

urlpatterns = [
    re_path(r"^collections/?$", collections.as_view({"get": "list", "post": "create"}), name="collection-list"),
    re_path(
        r"^collections/search/?$", views.MultiSearchViewSet.as_view({"post": "search"}), name="collection-search-many"
    ),
    re_path(
        rf"^collections/{_UUID}/?$",
        collections.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="collection-detail",
    ),
    re_path(rf"^collections/{_UUID}/search/?$", collections.as_view({"post": "search"}), name="collection-search"),
    re_path(rf"^collections/{_UUID}/reembed/?$", collections.as_view({"post": "reembed"}), name="collection-reembed"),
    re_path(
        rf"^collections/{_UUID}/documents/?$",
        views.CollectionDocumentsViewSet.as_view({"get": "list_documents", "post": "create_document"}),
        name="collection-documents",
    ),
    re_path(r"^documents/?$", documents.as_view({"get": "list"}), name="document-list"),
    re_path(
        rf"^documents/{_UUID}/?$",
        documents.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="document-detail",
    ),
    re_path(rf"^documents/{_UUID}/retry/?$", documents.as_view({"post": "retry"}), name="document-retry"),
    re_path(
        rf"^documents/{_UUID}/chunks/?$",
        views.DocumentChunksViewSet.as_view({"get": "list_chunks"}),
        name="document-chunks",
    ),
]
