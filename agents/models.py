"""Agents and what they use: providers (model endpoints), tools, conversations and runs."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from config.crypto import EncryptedJSONField, EncryptedTextField
from projects.models import ProjectScopedModel, Team


class Provider(ProjectScopedModel):
    """A model endpoint of a project: any OpenAI-compatible API, or the local models."""

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible"
        LOCAL = "local", "Local (offline) models"

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.OPENAI)
    base_url = models.URLField(max_length=500, blank=True, help_text="Empty: the OpenAI API.")
    api_key = EncryptedTextField(blank=True, help_text="Stored encrypted; never returned by the API.")
    organization = models.CharField(max_length=120, blank=True)
    default_chat_model = models.CharField(max_length=200, blank=True)
    default_embedding_model = models.CharField(max_length=200, blank=True)
    timeout_seconds = models.FloatField(default=60, validators=[MinValueValidator(1), MaxValueValidator(600)])
    max_retries = models.PositiveSmallIntegerField(default=2, validators=[MaxValueValidator(10)])
    is_default = models.BooleanField(default=False, help_text="Used by agents that name no provider.")

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint("project", "name", name="provider_unique_name"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_default=True), name="provider_one_default_per_project"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Agent(ProjectScopedModel):
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    instructions = models.TextField(blank=True, max_length=50_000)
    provider = models.ForeignKey(
        Provider,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agents",
        help_text="Empty: the project's default provider, else the deployment's default.",
    )
    model = models.CharField(max_length=200, blank=True, help_text="Empty: the provider's default chat model.")
    temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0), MaxValueValidator(2)])
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(128_000)]
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="agents")
    is_active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    max_tool_rounds = models.PositiveSmallIntegerField(default=5, validators=[MaxValueValidator(20)])
    memory_window = models.PositiveSmallIntegerField(
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(200)],
        help_text="How many earlier messages of a conversation are sent to the model.",
    )
    tools = models.ManyToManyField("Tool", through="ToolBinding", related_name="agents", blank=True)
    collections = models.ManyToManyField(
        "knowledge.Collection",
        related_name="agents",
        blank=True,
        help_text="Knowledge the agent answers from: searched before each answer (``auto_retrieval``) and "
        "through the built-in ``knowledge_search`` tool.",
    )
    auto_retrieval = models.BooleanField(
        default=True,
        help_text="Search the agent's collections with each user message and put the best chunks in the prompt.",
    )
    retrieval_top_k = models.PositiveSmallIntegerField(
        default=4, validators=[MinValueValidator(1), MaxValueValidator(20)], help_text="Chunks put in the prompt."
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint("project", "name", name="agent_unique_name")]

    def __str__(self) -> str:
        return self.name


_TOOL_NAME = RegexValidator(r"^[a-zA-Z0-9_-]{1,64}$", "Letters, digits, _ and - only (a function name).")


class Tool(ProjectScopedModel):
    """An HTTP tool the model may call: the arguments fill ``url_template`` and, for methods
    with a body, become the JSON body."""

    class Method(models.TextChoices):
        GET = "GET"
        POST = "POST"
        PUT = "PUT"
        PATCH = "PATCH"
        DELETE = "DELETE"

    name = models.CharField(max_length=64, validators=[_TOOL_NAME])
    description = models.TextField(blank=True, max_length=2000)
    method = models.CharField(max_length=8, choices=Method.choices, default=Method.GET)
    url_template = models.CharField(max_length=2000, help_text="e.g. https://api.example.com/orders/{order_id}")
    headers = EncryptedJSONField(blank=True, default=dict, help_text="Sent with every call; stored encrypted.")
    parameters = models.JSONField(default=dict, blank=True, help_text="JSON Schema of the arguments.")
    timeout_seconds = models.FloatField(default=10, validators=[MinValueValidator(0.1), MaxValueValidator(120)])

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint("project", "name", name="tool_unique_name")]

    def __str__(self) -> str:
        return self.name


class ToolBinding(ProjectScopedModel):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="bindings")
    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="bindings")
    config = models.JSONField(default=dict, blank=True, help_text="Fixed arguments merged into every call.")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint("agent", "tool", name="toolbinding_unique")]


class Conversation(ProjectScopedModel):
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]


class Message(ProjectScopedModel):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    tool_calls = models.JSONField(null=True, blank=True)
    tool_call_id = models.CharField(max_length=120, blank=True)
    name = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]


class Run(ProjectScopedModel):
    """A background execution of an agent by a Celery worker."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="runs")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    input = models.JSONField(help_text="A string, or a list of chat messages.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    output = models.TextField(blank=True)
    error = models.JSONField(null=True, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    api_key_id = models.UUIDField(null=True, blank=True)
    user_id = models.UUIDField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]


class RunEvent(models.Model):
    """What a run reports as it goes (progress, tokens, tool calls, the result); read by
    ``GET /runs/{id}/events`` as SSE. Ordered by ``seq`` within the run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint("run", "seq", name="runevent_unique_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq} {self.type}"
