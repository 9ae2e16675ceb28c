"""Django admin for the usage ledger: read-only. Rows are written by the model gateway, one per
call, and never changed or removed (the ledger is what billing and disputes rest on)."""

from __future__ import annotations

from django.contrib import admin

from config.admin import ReadOnlyAdmin
from usage.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "project",
        "model",
        "operation",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost",
        "latency_ms",
    )
    list_select_related = ("project",)
    list_filter = ("project", "model", "status", "operation", "provider_kind", "usage_estimated")
    search_fields = ("model", "request_id", "error_code", "project__name")
    date_hierarchy = "created_at"
    fieldsets = (
        (None, {"fields": ("project", "created_at", "operation", "status", "error_code")}),
        ("Model", {"fields": ("provider_kind", "provider_id", "model", "latency_ms")}),
        (
            "Tokens and cost",
            {
                "fields": (
                    "prompt_tokens",
                    "completion_tokens",
                    "total_tokens",
                    "usage_estimated",
                    "input_price_per_million",
                    "output_price_per_million",
                    "cost",
                )
            },
        ),
        ("Caller", {"fields": ("api_key_id", "user_id", "agent_id", "run_id", "conversation_id", "request_id")}),
    )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the ledger is append-only
