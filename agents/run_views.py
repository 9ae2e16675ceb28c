"""The runs API: start a run of an agent, list and read runs, cancel one, and follow its events
as Server-Sent Events. Writes go through :mod:`agents.runs`; a Celery worker executes the run.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import AsyncIterator

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from agents import runs
from agents.chat_serializers import MAX_MESSAGES, ChatMessageSerializer
from agents.chat_views import event_stream
from agents.models import Agent, Run, RunEvent
from config.serializers import NoBodySerializer, StrictSerializer
from projects.authentication import APIKeyAuthentication
from projects.models import Role
from projects.tenancy import PROJECT_HEADER, ProjectScopedAsyncView, ProjectScopedViewSet

# --- serializers ------------------------------------------------------------------------------

_STATUS_SCHEMA = {"type": "string", "enum": [s.value for s in Run.Status]}
_MESSAGE_ROLES = ["system", "developer", "user", "assistant", "tool"]
_INPUT_SCHEMA = {
    "oneOf": [
        {"type": "string", "minLength": 1, "description": "The user's message."},
        {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_MESSAGES,
            "description": "Chat messages, oldest first.",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": _MESSAGE_ROLES},
                    "content": {"type": "string", "nullable": True},
                    "name": {"type": "string", "maxLength": 64},
                    "tool_calls": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
                    "tool_call_id": {"type": "string", "maxLength": 120},
                },
                "required": ["role"],
            },
        },
    ]
}


@extend_schema_field(_INPUT_SCHEMA)
class RunInputField(serializers.JSONField):
    pass


@extend_schema_field(_STATUS_SCHEMA)
class RunStatusField(serializers.CharField):
    pass


class RunErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="e.g. `provider_auth_failed`, `worker_lost`, `run_timeout`.")
    message = serializers.CharField()


class RunUsageSerializer(serializers.Serializer):
    # not required: a run that has not ended has none (``{}``)
    prompt_tokens = serializers.IntegerField(required=False)
    completion_tokens = serializers.IntegerField(required=False)
    total_tokens = serializers.IntegerField(required=False)
    estimated = serializers.BooleanField(required=False, help_text="Counted by us; the provider reported none.")


class RunSerializer(serializers.ModelSerializer):
    agent = serializers.UUIDField(source="agent_id", read_only=True)
    conversation = serializers.UUIDField(source="conversation_id", read_only=True, allow_null=True)
    status = RunStatusField(read_only=True)
    input = RunInputField(read_only=True)
    error = RunErrorSerializer(read_only=True, allow_null=True, help_text="Why the run failed; null otherwise.")
    usage = RunUsageSerializer(
        read_only=True, help_text="Tokens of the run's model calls; empty until the run has ended."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "agent",
            "conversation",
            "status",
            "input",
            "output",
            "error",
            "usage",
            "attempts",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "updated_at",
        ]
        read_only_fields = fields


class RunCreateSerializer(StrictSerializer):
    input = RunInputField(help_text="A string (the user's message), or a list of chat messages.")

    def validate_input(self, value):
        if isinstance(value, str):
            if not value.strip():
                raise ValidationError("The input must not be empty.")
            return value
        if isinstance(value, list):
            if not value:
                raise ValidationError("Give at least one message.")
            if len(value) > MAX_MESSAGES:
                raise ValidationError(f"At most {MAX_MESSAGES} messages.")
            messages = ChatMessageSerializer(data=value, many=True)
            if not messages.is_valid():
                raise ValidationError(messages.errors)
            return [dict(m) for m in messages.validated_data]
        raise ValidationError("A string, or a list of chat messages.")


# --- filters ------------------------------------------------------------------------------------


class _UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, taken to UTC (the database refuses some far-off offsets)."""

    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC)
        except (OverflowError, ValueError):
            raise forms.ValidationError("Enter a valid date/time.", code="invalid") from None


class _DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UTCDateTimeField


class RunFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Run.Status.choices)
    agent = django_filters.UUIDFilter(field_name="agent_id")
    created_after = _DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = _DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["status", "agent", "created_after", "created_before"]


# --- views ------------------------------------------------------------------------------------


class AgentRunViewSet(ProjectScopedViewSet):
    """``POST /agents/{id}/runs/``: the agent is looked up in the caller's project (404 else)."""

    queryset = Agent.objects.all()
    serializer_class = RunCreateSerializer
    http_method_names = ["post", "options"]
    filter_backends = []

    @extend_schema(
        operation_id="agents_runs_create",
        tags=["runs"],
        summary="Start a run of an agent in the background",
        description="Queues a run and answers at once with `202` and the run (`status: queued`); a worker "
        "executes it: `queued → running → succeeded | failed | cancelled`. Follow it with `GET /runs/{id}/` "
        "or `GET /runs/{id}/events` (Server-Sent Events). Needs the member role or a `write` key.",
        request=RunCreateSerializer,
        responses={202: RunSerializer},
        examples=[
            OpenApiExample("A message", value={"input": "Where is my order A-7?"}, request_only=True),
            OpenApiExample(
                "Messages",
                value={"input": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
                request_only=True,
            ),
        ],
    )
    def create_run(self, request, pk=None):
        agent = self.get_object()  # 404 before any 400
        body = RunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        context = request.project_context
        run = runs.run_create(
            agent=agent,
            input=body.validated_data["input"],
            api_key_id=context.api_key.pk if context.api_key else None,
            user_id=None if context.api_key else request.user.pk,
            request_id=getattr(request, "id", "") or "",
        )
        headers = {"Location": f"/api/v1/runs/{run.pk}"}
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED, headers=headers)


@extend_schema_view(
    list=extend_schema(
        tags=["runs"],
        summary="The project's runs",
        description="Newest first. Filter by `status` (repeatable), `agent`, and `created_after` / `created_before`.",
    ),
    retrieve=extend_schema(tags=["runs"], summary="A run: its status, output, error and usage"),
)
class RunViewSet(ProjectScopedViewSet):
    """Runs are created through ``POST /agents/{id}/runs/`` and written by workers: read-only
    here, but for ``cancel``."""

    queryset = Run.objects.all()
    serializer_class = RunSerializer
    filterset_class = RunFilter
    ordering_fields = ["created_at", "started_at", "finished_at", "status"]
    http_method_names = ["get", "post", "head", "options"]

    @extend_schema(
        operation_id="runs_cancel",
        tags=["runs"],
        summary="Cancel a run",
        description="A queued run is cancelled at once (`200`). A running run is asked to stop (`202`, "
        "`cancel_requested: true`): its worker stops within about a second, closing the model call in flight, "
        "and the run ends `cancelled`. Cancelling a cancelled run is a no-op; a finished run is `409`. Needs the "
        "member role or a `write` key.",
        request=None,
        responses={200: RunSerializer, 202: RunSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        NoBodySerializer(data=request.data).is_valid(raise_exception=True)  # no body, or {}
        run = runs.run_cancel(run=run)
        code = status.HTTP_202_ACCEPTED if run.status == Run.Status.RUNNING else status.HTTP_200_OK
        return Response(RunSerializer(run).data, status=code)


# --- events (SSE) -------------------------------------------------------------------------------

EVENTS_POLL_SECONDS = 0.25  # how often the stream looks for new events
EVENTS_MAX_SECONDS = 600  # one request streams at most this long; reconnect with Last-Event-ID
EVENTS_BATCH = 500


def sse_event(event: RunEvent) -> str:
    data = json.dumps(event.data, separators=(",", ":"), default=str)
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"


async def run_event_stream(run_id, after: int) -> AsyncIterator[str]:
    """The run's events after seq ``after``, then new ones as they come, until the run ends."""
    deadline = time.monotonic() + EVENTS_MAX_SECONDS
    last = after
    while True:
        # The status first: events written before the run ended are then in the read below.
        current = await Run.objects.filter(pk=run_id).values_list("status", flat=True).afirst()
        batch = [e async for e in RunEvent.objects.filter(run_id=run_id, seq__gt=last).order_by("seq")[:EVENTS_BATCH]]
        for event in batch:
            yield sse_event(event)
            last = event.seq
        if len(batch) == EVENTS_BATCH:
            continue
        if current is None or current in Run.FINAL:
            break
        if time.monotonic() >= deadline:
            yield ": stream time limit reached; reconnect with Last-Event-ID to go on\n\n"
            return
        await asyncio.sleep(EVENTS_POLL_SECONDS)
    yield "data: [DONE]\n\n"


def _after(request) -> int:
    raw = request.GET.get("after")
    if raw is None:
        raw = request.headers.get("Last-Event-ID")
    if raw in (None, ""):
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValidationError({"after": ["A non-negative integer: the seq of the last event received."]})
    return value


class RunEventsDoc(APIView):
    """Documentation twin of :class:`RunEventsView` (never routed to)."""

    authentication_classes = [APIKeyAuthentication, JWTAuthentication]

    @extend_schema(
        operation_id="runs_events",
        tags=["runs"],
        summary="Follow a run's events (Server-Sent Events)",
        description="Replays the run's events after `after` (or the `Last-Event-ID` header), then streams new "
        "ones until the run ends, then `data: [DONE]`. Each is `id: <seq>`, `event: <type>`, `data: <JSON>`; "
        "types: `status` (`queued`, `running` with the attempt), `tokens` (`text` of the answer as it "
        "streams), `tool_call`, `tool_result`, and one of `final` (output, usage), `error` (code, message) or "
        "`cancelled` at the end. `: heartbeat` comments keep the connection alive; a stream stops after "
        f"{EVENTS_MAX_SECONDS // 60} minutes (reconnect with `Last-Event-ID`).",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, OpenApiParameter.QUERY, required=False),
            OpenApiParameter("Last-Event-ID", OpenApiTypes.INT, OpenApiParameter.HEADER, required=False),
            OpenApiParameter(
                PROJECT_HEADER,
                OpenApiTypes.UUID,
                OpenApiParameter.HEADER,
                required=False,
                description="The project to act in. Required with a JWT; implied by an API key.",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.ANY, description="The event stream."),
        },
    )
    def get(self, request, pk):  # pragma: no cover - documentation only
        raise NotImplementedError


class RunEventsView(ProjectScopedAsyncView):
    """``GET /runs/{id}/events``."""

    http_method_names = ["get"]
    required_role = Role.VIEWER
    schema_view = RunEventsDoc

    async def get(self, request, pk):
        run = await self.scoped(Run.objects.only("id"), request, pk=pk)
        return await event_stream(request, run_event_stream(run.pk, _after(request)))
