"""The usage ledger: one row per model call through the gateway. Append-only.

Ids of the caller, agent, run and conversation are plain UUID columns rather than foreign keys:
a ledger row must outlive (and never be rewritten by) the deletion of what it refers to.
"""

from __future__ import annotations

from django.db import models

from projects.models import ProjectScopedModel


class UsageRecord(ProjectScopedModel):
    class Operation(models.TextChoices):
        CHAT = "chat"
        STREAM = "stream"
        EMBEDDING = "embedding"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    api_key_id = models.UUIDField(null=True, blank=True, db_index=True)
    user_id = models.UUIDField(null=True, blank=True)
    agent_id = models.UUIDField(null=True, blank=True, db_index=True)
    run_id = models.UUIDField(null=True, blank=True)
    conversation_id = models.UUIDField(null=True, blank=True)
    provider_id = models.UUIDField(null=True, blank=True)
    provider_kind = models.CharField(max_length=16)
    model = models.CharField(max_length=200)
    operation = models.CharField(max_length=16, choices=Operation.choices)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    usage_estimated = models.BooleanField(default=False, help_text="Counted by us; the provider did not report usage.")
    input_price_per_million = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    output_price_per_million = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices)
    error_code = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["project", "created_at"])]
