"""Shapes of collections, documents, chunks and searches."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from agents.models import Provider
from agents.serializers import UniqueNameMixin, _json_object, _scoped
from config.serializers import StrictModelSerializer, StrictSerializer
from knowledge.models import Collection, Document, SearchMode
from knowledge.search import MAX_TOP_K

MAX_TEXT_CHARS = 1_000_000
MAX_FILTER_DOCUMENTS = 100


def _scalar_metadata(value: Any, what: str) -> dict:
    """Metadata that filters can match: a flat object of strings, numbers, booleans."""
    value = _json_object(value, what)
    if len(value) > 50:
        raise serializers.ValidationError(f"{what} has more than 50 keys.")
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool) or len(str(key)) > 100:
            raise serializers.ValidationError(
                f"{what}: '{key}' must be a string, a number or a boolean (and a key of at most 100 characters)."
            )
    return value


# --- collections ----------------------------------------------------------------------------


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "The least a collection needs",
            value={"name": "Help center", "description": "Articles of help.acme.example"},
            request_only=True,
        ),
        OpenApiExample(
            "Chosen embedding model and chunking",
            value={
                "name": "Manuals",
                "embedding_provider": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "embedding_model": "text-embedding-3-small",
                "chunk_size": 300,
                "chunk_overlap": 60,
                "default_mode": "hybrid",
                "default_top_k": 8,
            },
            request_only=True,
        ),
    ]
)
class CollectionSerializer(UniqueNameMixin, StrictModelSerializer):
    embedding_provider = _scoped(
        Provider.objects.all(),
        "provider",
        allow_null=True,
        required=False,
        help_text="Empty: the project's default provider, else the deployment's (the local model on the embedded "
        "default). Fixed once created: change it with `POST …/reembed`.",
    )
    metadata = serializers.JSONField(required=False, help_text="Free-form JSON object.")
    document_counts = serializers.SerializerMethodField(help_text="Documents by status.")
    unique_name_message = "A collection with this name already exists in the project."

    class Meta:
        model = Collection
        fields = [
            "id",
            "name",
            "description",
            "embedding_provider",
            "embedding_model",
            "embedding_dimensions",
            "chunk_size",
            "chunk_overlap",
            "default_top_k",
            "default_mode",
            "default_score_threshold",
            "metadata",
            "document_counts",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "embedding_dimensions", "document_counts", "created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            # The model is changed by re-embedding (one call), never by a plain update.
            for name in ("embedding_provider", "embedding_model", "chunk_size", "chunk_overlap"):
                fields[name].read_only = True
        return fields

    def validate_metadata(self, value: Any) -> dict:
        return _json_object(value, "metadata")

    def validate(self, attrs: dict) -> dict:
        size = attrs.get("chunk_size", getattr(self.instance, "chunk_size", 200))
        overlap = attrs.get("chunk_overlap", getattr(self.instance, "chunk_overlap", 40))
        if overlap >= size:
            raise serializers.ValidationError({"chunk_overlap": ["Must be smaller than chunk_size."]})
        return attrs

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_document_counts(self, collection: Collection) -> dict:
        counts = getattr(collection, "status_counts", None)
        if counts is None:  # one object (create, retrieve): counted here; lists annotate
            counts = {}
            for status in collection.documents.values_list("status", flat=True):
                counts[status] = counts.get(status, 0) + 1
        return {status: counts.get(status, 0) for status in Document.Status.values}


class ReembedSerializer(StrictSerializer):
    embedding_provider = _scoped(
        Provider.objects.all(), "provider", allow_null=True, required=False, help_text="Null: the project's default."
    )
    embedding_model = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Empty: the provider's default embedding model."
    )


class ReembedResultSerializer(serializers.Serializer):
    collection = serializers.UUIDField()
    documents_queued = serializers.IntegerField()


# --- documents ------------------------------------------------------------------------------


class DocumentSerializer(StrictModelSerializer):
    source_url = serializers.CharField(read_only=True, help_text="Where a `url` document was fetched from; else empty.")
    progress = serializers.SerializerMethodField(help_text="Chunks embedded so far, of all the document's chunks.")
    error = serializers.SerializerMethodField(help_text="Why the document failed, or null.")
    metadata = serializers.JSONField(required=False)

    class Meta:
        model = Document
        fields = [
            "id",
            "collection",
            "title",
            "source",
            "source_url",
            "filename",
            "mime_type",
            "size_bytes",
            "checksum",
            "status",
            "progress",
            "error",
            "chunk_count",
            "token_count",
            "attempts",
            "metadata",
            "ready_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [f for f in fields if f not in ("title", "metadata")]

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "chunks_done": {"type": "integer"},
                "chunks_total": {"type": "integer"},
                "percent": {"type": "number"},
            },
        }
    )
    def get_progress(self, document: Document) -> dict:
        total = document.chunk_count
        done = document.chunks_embedded
        percent = 100.0 if document.status == Document.Status.READY else (round(100 * done / total, 1) if total else 0)
        return {"chunks_done": done, "chunks_total": total, "percent": percent}

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    )
    def get_error(self, document: Document) -> dict | None:
        if not document.error_code:
            return None
        return {"code": document.error_code, "message": document.error_message}

    def validate_metadata(self, value: Any) -> dict:
        return _scalar_metadata(value, "metadata")


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Text",
            value={"title": "Returns", "text": "You may return any item within 30 days.", "metadata": {"lang": "en"}},
            request_only=True,
        ),
        OpenApiExample("A web page", value={"url": "https://help.acme.example/returns.html"}, request_only=True),
    ]
)
class DocumentTextSerializer(StrictSerializer):
    """JSON ingestion of ``text``, or of a ``url`` fetched now; files go as multipart ``file``."""

    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    text = serializers.CharField(required=False, max_length=MAX_TEXT_CHARS, trim_whitespace=False)
    url = serializers.URLField(
        required=False,
        max_length=2000,
        help_text="Fetched by the server (public addresses only), its type taken from the answer and checked.",
    )
    format = serializers.ChoiceField(
        choices=["text", "markdown", "html", "csv", "json"], default="text", help_text="How to read `text`."
    )
    metadata = serializers.JSONField(required=False, default=dict)

    def validate_metadata(self, value: Any) -> dict:
        return _scalar_metadata(value, "metadata")

    def validate(self, attrs: dict) -> dict:
        if "url" in attrs:
            if "text" in attrs:
                raise serializers.ValidationError({"url": ["Give `text` or `url`, not both."]})
            if not attrs["url"].lower().startswith(("http://", "https://")):
                raise serializers.ValidationError({"url": ["Only http(s) URLs can be fetched."]})
        elif not attrs.get("text", "").strip():
            raise serializers.ValidationError({"text": ["This field is required and may not be blank."]})
        return attrs


class DocumentUploadSerializer(StrictSerializer):
    file = serializers.FileField(help_text="Text, Markdown, HTML, PDF, DOCX, CSV or JSON.")
    title = serializers.CharField(required=False, allow_blank=True, max_length=300)
    metadata = serializers.JSONField(required=False, default=dict, help_text="A JSON object (as a string in a form).")

    def validate_metadata(self, value: Any) -> dict:
        return _scalar_metadata(value, "metadata")


# --- search ---------------------------------------------------------------------------------


class SearchFilterSerializer(StrictSerializer):
    documents = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=MAX_FILTER_DOCUMENTS,
        help_text="Only these documents.",
    )
    metadata = serializers.JSONField(
        required=False,
        help_text="Chunks whose metadata (their document's, plus `heading` and `page`) has these values.",
    )

    def validate_metadata(self, value: Any) -> dict:
        return _scalar_metadata(value, "filter.metadata")


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Hybrid search",
            value={"query": "how long do I have to return an item?", "top_k": 5, "mode": "hybrid"},
            request_only=True,
        ),
        OpenApiExample(
            "Filtered by metadata",
            value={
                "query": "refund delays",
                "mode": "vector",
                "score_threshold": 0.3,
                "filter": {"metadata": {"lang": "en"}},
            },
            request_only=True,
        ),
    ]
)
class SearchSerializer(StrictSerializer):
    query = serializers.CharField(max_length=4000)
    top_k = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_TOP_K, help_text="Default: the collection's `default_top_k`."
    )
    mode = serializers.ChoiceField(choices=SearchMode.choices, required=False, help_text="Default: the collection's.")
    score_threshold = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Results scoring less are dropped. The score is the mode's: cosine similarity (vector), "
        "full-text rank (keyword) or the fused score Σ 1/(60 + rank) (hybrid).",
    )
    filter = SearchFilterSerializer(required=False)


class MultiSearchSerializer(SearchSerializer):
    collections = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=50,
        help_text="Collections of the project to search; default: all of them.",
    )


class SearchDocumentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()


class SearchScoresSerializer(serializers.Serializer):
    vector = serializers.FloatField(allow_null=True, help_text="Cosine similarity, when found by meaning.")
    keyword = serializers.FloatField(allow_null=True, help_text="Full-text rank, when found by keywords.")
    vector_rank = serializers.IntegerField(allow_null=True)
    keyword_rank = serializers.IntegerField(allow_null=True)


class SearchResultSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    score = serializers.FloatField()
    scores = SearchScoresSerializer()
    chunk_id = serializers.UUIDField()
    ordinal = serializers.IntegerField()
    text = serializers.CharField()
    metadata = serializers.DictField()
    document = SearchDocumentSerializer()
    collection = serializers.UUIDField()


class SearchResponseSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    mode = serializers.ChoiceField(choices=SearchMode.choices)
    results = SearchResultSerializer(many=True)
