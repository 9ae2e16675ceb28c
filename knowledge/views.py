"""The knowledge API: collections, their documents (ingestion), chunks, and search.

Writes go through :mod:`knowledge.services`; searches through :mod:`knowledge.search`.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import BooleanField, Count, ExpressionWrapper, Q
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from config.exceptions import PayloadTooLarge
from config.parsers import JSONParser
from config.serializers import NoBodySerializer
from knowledge import search, services
from knowledge.fetch import fetch
from knowledge.filters import CollectionFilter, DocumentFilter
from knowledge.models import Chunk, Collection, Document
from knowledge.serializers import (
    CollectionSerializer,
    DocumentSerializer,
    DocumentTextSerializer,
    DocumentUploadSerializer,
    MultiSearchSerializer,
    ReembedResultSerializer,
    ReembedSerializer,
    SearchResponseSerializer,
    SearchSerializer,
)
from projects.models import Role
from projects.tenancy import ProjectScopedViewSet
from usage.services import CallContext

_NO_PUT = ["get", "post", "patch", "delete", "head", "options"]
# What a text document's ``format`` is parsed as.
TEXT_FORMATS = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "csv": "text/csv",
    "json": "application/json",
}
# Room for a multipart envelope around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def call_context(request) -> CallContext:
    api_key = request.project_context.api_key
    return CallContext(
        project_id=request.project.pk,
        api_key_id=api_key.pk if api_key else None,
        user_id=None if api_key else request.user.pk,
        request_id=getattr(request, "id", "") or "",
    )


def search_response(hits: list[search.Hit], mode: str) -> dict:
    results = [
        {
            "position": position,
            "score": hit.score,
            "scores": {
                "vector": hit.vector_score,
                "keyword": hit.keyword_score,
                "vector_rank": hit.vector_rank,
                "keyword_rank": hit.keyword_rank,
            },
            "chunk_id": hit.chunk_id,
            "ordinal": hit.ordinal,
            "text": hit.text,
            "metadata": hit.metadata,
            "document": {"id": hit.document_id, "title": hit.document_title},
            "collection": hit.collection_id,
        }
        for position, hit in enumerate(hits, start=1)
    ]
    return {"count": len(results), "next": None, "previous": None, "mode": mode, "results": results}


def filter_documents(request, documents):
    """The document list filters (``DocumentFilter``) on a queryset a view built itself."""
    filterset = DocumentFilter(request.query_params, queryset=documents)
    if not filterset.is_valid():
        raise serializers.ValidationError(filterset.errors)
    return filterset.qs


def _query(data: dict, collection: Collection | None) -> search.Query:
    filters = data.get("filter") or {}
    return search.Query(
        text=data["query"],
        top_k=data.get("top_k") or (collection.default_top_k if collection else 5),
        mode=data.get("mode") or (collection.default_mode if collection else "hybrid"),
        score_threshold=data.get("score_threshold", collection.default_score_threshold if collection else None),
        documents=filters.get("documents") or [],
        metadata=filters.get("metadata") or {},
    )


SEARCH_DESCRIPTION = (
    "`mode`: `vector` (meaning; score = cosine similarity), `keyword` (full text; score = rank) or `hybrid` "
    "(both, fused by reciprocal rank with k = 60). `filter.documents` and `filter.metadata` narrow every "
    "method. The answer has the paginated shape (`count`, `next`, `previous`, `results`); `top_k` bounds it, "
    "so `next` is always null. Each result has the chunk's text, its `document` (`id`, `title`), the scores of "
    "each method and its `position`. A query in `vector` or `hybrid` mode is embedded by the collection's "
    "model, and metered."
)


@extend_schema_view(
    list=extend_schema(summary="The project's knowledge collections"),
    create=extend_schema(
        summary="Create a collection",
        description="Only `name` is required. The embedding model is fixed when the collection is created (the "
        "project's default provider and its default embedding model, else the local all-MiniLM-L6-v2); "
        "`POST /collections/{id}/reembed` changes it.",
    ),
    partial_update=extend_schema(summary="Rename a collection or change its retrieval defaults"),
    destroy=extend_schema(summary="Delete a collection with its documents and chunks"),
)
class CollectionViewSet(ProjectScopedViewSet):
    queryset = Collection.objects.select_related("embedding_provider")
    serializer_class = CollectionSerializer
    filterset_class = CollectionFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]
    http_method_names = _NO_PUT
    action_roles = {"search": Role.VIEWER, "reembed": Role.ADMIN, "destroy": Role.ADMIN}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        # Document counts by status for the whole page in one query.
        counts: dict = {}
        grouped = (
            Document.objects.filter(collection_id__in=[c.pk for c in rows])
            .values("collection_id", "status")
            .annotate(n=Count("id"))
        )
        for row in grouped:
            counts.setdefault(row["collection_id"], {})[row["status"]] = row["n"]
        for collection in rows:
            collection.status_counts = counts.get(collection.pk, {})
        return page

    def perform_create(self, serializer) -> None:
        serializer.instance = services.collection_create(project=self.request.project, **serializer.validated_data)

    def perform_destroy(self, instance) -> None:
        services.collection_delete(collection=instance)

    @extend_schema(
        summary="Search a collection",
        description=SEARCH_DESCRIPTION,
        request=SearchSerializer,
        responses={200: SearchResponseSerializer},
    )
    @action(detail=True, methods=["post"])
    def search(self, request, pk=None):
        collection = self.get_object()
        body = SearchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        query = _query(body.validated_data, collection)
        hits = search.search(call_context(request), [collection], query)
        return Response(search_response(hits, query.mode))

    @extend_schema(
        summary="Embed the whole collection again, with the same or another model (admins)",
        description="One call after a model change: every chunk's vector is cleared and made again by the "
        "collection's (new) model; documents go back to `embedding` and show their progress. Chunks are kept: "
        "nothing is parsed again.",
        request=ReembedSerializer,
        responses={202: ReembedResultSerializer},
    )
    @action(detail=True, methods=["post"])
    def reembed(self, request, pk=None):
        collection = self.get_object()
        body = ReembedSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        queued = services.collection_reembed(
            collection=collection,
            embedding_provider=changes.get("embedding_provider", ...),
            embedding_model=changes.get("embedding_model", ""),
        )
        return Response({"collection": collection.pk, "documents_queued": queued}, status=status.HTTP_202_ACCEPTED)


class MultiSearchViewSet(ProjectScopedViewSet):
    """``POST /collections/search``: several (or all) of the project's collections at once."""

    queryset = Collection.objects.select_related("embedding_provider")
    serializer_class = MultiSearchSerializer
    http_method_names = ["post", "options"]
    filter_backends = []
    read_role = write_role = Role.VIEWER

    @extend_schema(
        operation_id="collections_search_many",
        summary="Search several collections of the project",
        description=SEARCH_DESCRIPTION + " `collections` names them (default: all); an id that is not one of "
        "the project's collections is a 400, whoever owns it.",
        request=MultiSearchSerializer,
        responses={200: SearchResponseSerializer},
    )
    def search(self, request):
        body = MultiSearchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        collections = self.get_queryset()
        if data.get("collections"):
            wanted = set(data["collections"])
            collections = list(collections.filter(pk__in=wanted))
            missing = wanted - {c.pk for c in collections}
            if missing:
                raise serializers.ValidationError(
                    {"collections": [f"No collection {sorted(map(str, missing))} in this project."]}
                )
        else:
            collections = list(collections)
        query = _query(data, None)
        hits = search.search(call_context(request), collections, query) if collections else []
        return Response(search_response(hits, query.mode))


class CollectionDocumentsViewSet(ProjectScopedViewSet):
    """``/collections/{id}/documents/``: the collection is looked up in the caller's project."""

    queryset = Collection.objects.all()
    serializer_class = DocumentSerializer
    parser_classes = [JSONParser, MultiPartParser]
    filter_backends = []  # the documents are filtered in list_documents (DocumentFilter)
    http_method_names = ["get", "post", "head", "options"]

    @extend_schema(
        summary="The documents of a collection",
        parameters=[
            OpenApiParameter("status", str, many=True, enum=Document.Status.values, description="Repeatable."),
            OpenApiParameter("source", str, enum=Document.Source.values),
            OpenApiParameter("mime_type", str),
        ],
        responses={200: DocumentSerializer(many=True)},
    )
    def list_documents(self, request, pk=None):
        collection = self.get_object()
        documents = filter_documents(request, Document.objects.filter(project=request.project, collection=collection))
        page = self.paginate_queryset(documents)
        return self.get_paginated_response(DocumentSerializer(page, many=True).data)

    @extend_schema(
        summary="Add a document (a file, text or a URL)",
        description="Multipart with a `file` (text, Markdown, HTML, PDF, DOCX, CSV or JSON; the type is checked "
        "against the content), or JSON with `text` and a `title`, or with a `url` (fetched now, public addresses "
        "only). Answers `202` with the document (`status: pending`); workers parse, chunk and embed it: "
        "`pending → parsing → embedding → ready | failed`, with `progress` on the way. A document larger than "
        "the limit is a `413`; the same content twice in a collection is a `409` naming the existing document.",
        request={"multipart/form-data": DocumentUploadSerializer, "application/json": DocumentTextSerializer},
        responses={202: DocumentSerializer, 409: OpenApiResponse(description="The collection has this document.")},
    )
    def create_document(self, request, pk=None):
        collection = self.get_object()  # 404 before any 400
        limit = settings.KNOWLEDGE_MAX_DOCUMENT_BYTES
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > limit + MULTIPART_OVERHEAD_BYTES:  # refused before the upload is read
            raise PayloadTooLarge(f"The document is larger than the limit of {limit} bytes.")
        if request.content_type.startswith("multipart/"):
            body = DocumentUploadSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            upload = body.validated_data["file"]
            if upload.size > limit:
                raise PayloadTooLarge(f"The document is {upload.size} bytes; the limit is {limit} bytes.")
            document = services.document_create(
                collection=collection,
                data=upload.read(),
                source=Document.Source.UPLOAD,
                title=body.validated_data.get("title") or upload.name,
                filename=upload.name,
                content_type=upload.content_type,
                metadata=body.validated_data["metadata"],
            )
        else:
            body = DocumentTextSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
            if "url" in data:
                return self._created(self._from_url(collection, data))
            mime_type = TEXT_FORMATS[data["format"]]
            document = services.document_create(
                collection=collection,
                data=data["text"].encode("utf-8"),
                source=Document.Source.TEXT,
                title=data.get("title") or data["text"].strip().splitlines()[0][:120],
                content_type=mime_type,
                metadata=data["metadata"],
            )
        return self._created(document)

    def _created(self, document: Document) -> Response:
        headers = {"Location": f"/api/v1/documents/{document.pk}"}
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED, headers=headers)

    def _from_url(self, collection: Collection, data: dict) -> Document:
        fetched = async_to_sync(fetch)(data["url"], limit=settings.KNOWLEDGE_MAX_DOCUMENT_BYTES)
        return services.document_create(
            collection=collection,
            data=fetched.content,
            source=Document.Source.URL,
            source_url=fetched.url[:2000],
            title=data.get("title") or fetched.filename or fetched.url[:300],
            filename=fetched.filename,
            content_type=fetched.content_type or None,
            metadata=data["metadata"],
        )


@extend_schema_view(
    list=extend_schema(
        summary="The project's documents",
        description="Filter by `collection` and `status` (repeatable). Each has its `status`, `progress` and, when "
        "it failed, `error`.",
    ),
    retrieve=extend_schema(summary="A document: its status, progress and error"),
    partial_update=extend_schema(summary="Rename a document or replace its metadata (its chunks follow)"),
    destroy=extend_schema(summary="Delete a document and its chunks"),
)
class DocumentViewSet(ProjectScopedViewSet):
    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    filterset_class = DocumentFilter
    search_fields = ["title", "filename"]
    ordering_fields = ["created_at", "updated_at", "title", "status"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_update(self, serializer) -> None:
        serializer.instance = services.document_update(document=serializer.instance, **serializer.validated_data)

    @extend_schema(
        summary="Ingest a failed document again",
        description="From its stored content: `failed → pending`, then as a new document. `409` unless it failed.",
        request=None,
        responses={202: DocumentSerializer},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        document = self.get_object()
        NoBodySerializer(data=request.data).is_valid(raise_exception=True)
        document = services.document_retry(document=document)
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


class ChunkSerializer(serializers.ModelSerializer):
    embedded = serializers.SerializerMethodField()

    class Meta:
        model = Chunk
        fields = ["id", "document", "ordinal", "text", "token_count", "metadata", "embedded"]

    def get_embedded(self, chunk: Chunk) -> bool:
        return chunk.embedded


class DocumentChunksViewSet(ProjectScopedViewSet):
    """``GET /documents/{id}/chunks``: what a document was cut into, in order."""

    queryset = Document.objects.all()
    serializer_class = ChunkSerializer
    http_method_names = ["get", "head", "options"]
    filter_backends = []

    @extend_schema(summary="The chunks of a document, in order", responses={200: ChunkSerializer(many=True)})
    def list_chunks(self, request, pk=None):
        document = self.get_object()
        chunks = (
            Chunk.objects.filter(project=request.project, document=document)
            .defer("embedding", "search_vector")
            .annotate(embedded=ExpressionWrapper(Q(embedding__isnull=False), output_field=BooleanField()))
            .order_by("ordinal")
        )
        page = self.paginate_queryset(chunks)
        return self.get_paginated_response(ChunkSerializer(page, many=True).data)
