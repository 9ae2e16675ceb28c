"""Django admin for knowledge bases: collections (document counts by status, a re-embed action),
documents (progress, error, a retry action) and chunks (read-only).

Collections and documents are created through the API, which checks uploads and queues their
ingestion; here they are watched and steered. A collection's name, description and retrieval
defaults, and a document's title, can be edited.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.translation import ngettext

from config.admin import ReadOnlyAdmin
from config.exceptions import DomainError
from knowledge import services
from knowledge.models import Chunk, Collection, Document

Status = Document.Status


def _each(modeladmin, request, objects, act, verb: str, logged: str) -> None:
    """Apply a service to each selected row; report what was done and what the service refused."""
    done, refused = 0, []
    for obj in objects:
        try:
            act(obj)
        except DomainError as exc:
            refused.append(f"{obj}: {exc.message}")
            continue
        modeladmin.log_change(request, obj, logged)
        done += 1
    if done:
        modeladmin.message_user(request, ngettext(f"{verb} %d item.", f"{verb} %d items.", done) % done)
    if refused:
        modeladmin.message_user(request, "Refused: " + "; ".join(refused[:20]), messages.WARNING)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "project",
        "embedding_model",
        "embedding_dimensions",
        "documents_total",
        "documents_ready",
        "documents_in_progress",
        "documents_failed",
        "created_at",
    ]
    list_filter = ["embedding_model", "default_mode"]
    search_fields = ["name", "description", "project__name"]
    list_select_related = ["project"]
    readonly_fields = [
        "project",
        "embedding_provider",
        "embedding_model",
        "embedding_dimensions",
        "embedding_version",
        "chunk_size",
        "chunk_overlap",
        "created_at",
        "updated_at",
    ]
    fields = [
        "project",
        "name",
        "description",
        "embedding_provider",
        "embedding_model",
        "embedding_dimensions",
        "embedding_version",
        "chunk_size",
        "chunk_overlap",
        "default_top_k",
        "default_mode",
        "default_score_threshold",
        "metadata",
        "created_at",
        "updated_at",
    ]
    actions = ["reembed_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_total=Count("documents"),
                n_ready=Count("documents", filter=Q(documents__status=Status.READY)),
                n_progress=Count("documents", filter=Q(documents__status__in=services.IN_PROGRESS)),
                n_failed=Count("documents", filter=Q(documents__status=Status.FAILED)),
            )
        )

    @admin.display(description="documents", ordering="n_total")
    def documents_total(self, obj) -> int:
        return obj.n_total

    @admin.display(description="ready", ordering="n_ready")
    def documents_ready(self, obj) -> int:
        return obj.n_ready

    @admin.display(description="in progress", ordering="n_progress")
    def documents_in_progress(self, obj) -> int:
        return obj.n_progress

    @admin.display(description="failed", ordering="n_failed")
    def documents_failed(self, obj) -> int:
        return obj.n_failed

    @admin.action(description="Re-embed selected collections (same model)")
    def reembed_selected(self, request, queryset) -> None:
        _each(
            self,
            request,
            queryset.select_related("embedding_provider"),
            lambda collection: services.collection_reembed(collection=collection),
            "Queued re-embedding of",
            "Re-embedding queued.",
        )


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "collection", "project", "status", "progress", "error_code", "size_bytes", "created_at"]
    list_filter = ["status", "source", "mime_type", "error_code"]
    search_fields = ["title", "filename", "checksum", "collection__name"]
    list_select_related = ["collection", "project"]
    date_hierarchy = "created_at"
    fields = [
        "project",
        "collection",
        "title",
        "source",
        "source_url",
        "filename",
        "mime_type",
        "size_bytes",
        "checksum",
        "status",
        "chunk_count",
        "chunks_embedded",
        "token_count",
        "attempts",
        "error_code",
        "error_message",
        "metadata",
        "ready_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [f for f in fields if f != "title"]
    actions = ["retry_selected"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="progress")
    def progress(self, obj) -> str:
        return f"{obj.chunks_embedded}/{obj.chunk_count}"

    @admin.action(description="Retry selected failed documents")
    def retry_selected(self, request, queryset) -> None:
        _each(self, request, queryset, lambda d: services.document_retry(document=d), "Retried", "Retried.")


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = ["document", "ordinal", "token_count", "excerpt", "collection"]
    search_fields = ["text", "document__title"]
    list_select_related = ["document", "collection"]
    raw_id_fields = ["document", "collection"]
    exclude = ["embedding", "search_vector"]

    @admin.display(description="text")
    def excerpt(self, obj) -> str:
        return obj.text[:120] + ("…" if len(obj.text) > 120 else "")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding", "search_vector")
