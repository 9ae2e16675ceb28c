"""OpenAPI descriptions of the async model-call endpoints.

drf-spectacular documents DRF views only; these views are plain async Django views (so they
never block the event loop). Each gets a DRF "documentation twin" here that describes its
requests, responses and security; ``ProjectScopedAsyncView.as_view`` hands the twin to the
schema generator. The twins are never routed to.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from agents.chat_serializers import (
    AgentChatRequestSerializer,
    ChatCompletionRequestSerializer,
    SummarizeRequestSerializer,
    TranslateRequestSerializer,
)
from projects.authentication import APIKeyAuthentication
from projects.tenancy import PROJECT_HEADER


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ToolCallFunctionSerializer(serializers.Serializer):
    name = serializers.CharField()
    arguments = serializers.CharField()


class ToolCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    function = ToolCallFunctionSerializer()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_null=True)
    tool_calls = ToolCallSerializer(many=True, required=False)


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    finish_reason = serializers.CharField()


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text="`chat.completion`")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    usage = UsageSerializer()


class TracedToolCallSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    arguments = serializers.CharField()
    result = serializers.DictField()


class AgentChatResponseSerializer(ChatCompletionSerializer):
    conversation_id = serializers.UUIDField(allow_null=True)
    citations = serializers.ListField(child=serializers.DictField())
    tool_calls = TracedToolCallSerializer(many=True, help_text="The tools the agent called for this answer.")


class OpenAIErrorBodySerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    param = serializers.CharField(allow_null=True)
    code = serializers.CharField()


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorBodySerializer()
    request_id = serializers.CharField(allow_null=True)


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ModelSerializer(many=True)


_SSE = OpenApiResponse(
    OpenApiTypes.ANY,
    description="With `stream: true`: Server-Sent Events — `chat.completion.chunk` objects as `data:` lines, "
    "`event: tool_call` / `event: tool_result`, `: heartbeat` comments, `event: final` (answer, usage, "
    "conversation id) and `data: [DONE]`.",
)
_PROJECT = OpenApiParameter(
    PROJECT_HEADER,
    OpenApiTypes.UUID,
    OpenApiParameter.HEADER,
    required=False,
    description="The project to act in. Required with a JWT; implied by an API key.",
)


class _Twin(APIView):
    authentication_classes = [APIKeyAuthentication, JWTAuthentication]


class AgentChatDoc(_Twin):
    @extend_schema(
        operation_id="agents_chat",
        tags=["agents"],
        summary="Chat with an agent (plain or streamed)",
        description="Send `message` (or `messages`), optionally with a `conversation_id` to continue one; the "
        "agent's last `memory_window` messages are sent along. The agent calls its bound tools (at most "
        "`max_tool_rounds` rounds). Needs the member role or a `write` key.",
        request=AgentChatRequestSerializer,
        parameters=[_PROJECT],
        responses={(200, "application/json"): AgentChatResponseSerializer, (200, "text/event-stream"): _SSE},
        examples=[OpenApiExample("Ask", value={"message": "Where is my order A-7?"}, request_only=True)],
    )
    def post(self, request, pk):  # pragma: no cover - documentation only
        raise NotImplementedError


class SummarizeDoc(_Twin):
    @extend_schema(
        operation_id="summarize",
        tags=["agents"],
        summary="Summarize a text (plain or streamed)",
        request=SummarizeRequestSerializer,
        parameters=[_PROJECT],
        responses={(200, "application/json"): ChatCompletionSerializer, (200, "text/event-stream"): _SSE},
        examples=[
            OpenApiExample(
                "Bullets", value={"text": "…", "style": "bullet_points", "max_length": 80}, request_only=True
            )
        ],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class TranslateDoc(_Twin):
    @extend_schema(
        operation_id="translate",
        tags=["agents"],
        summary="Translate a text (plain or streamed)",
        request=TranslateRequestSerializer,
        parameters=[_PROJECT],
        responses={(200, "application/json"): ChatCompletionSerializer, (200, "text/event-stream"): _SSE},
        examples=[
            OpenApiExample("To French", value={"text": "Good morning", "target_language": "French"}, request_only=True)
        ],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class _OpenAITwin(APIView):
    authentication_classes = [APIKeyAuthentication]


_OPENAI_ERRORS = dict.fromkeys((400, 401, 403, 404, 413, 429, 502, 504), OpenAIErrorSerializer)


class ChatCompletionsDoc(_OpenAITwin):
    @extend_schema(
        operation_id="openai_chat_completions",
        tags=["openai-compatible"],
        summary="OpenAI-compatible chat completions",
        description="Point an OpenAI SDK at `<host>/v1` with a project API key. `model` is an agent's name "
        "(its instructions, tools and model apply), `provider-name/model`, or a model of the project's "
        "default provider. Errors use OpenAI's error shape.",
        request=ChatCompletionRequestSerializer,
        responses={
            (200, "application/json"): ChatCompletionSerializer,
            (200, "text/event-stream"): _SSE,
            **_OPENAI_ERRORS,
        },
        examples=[
            OpenApiExample(
                "Ask an agent",
                value={"model": "support", "messages": [{"role": "user", "content": "Hello!"}], "stream": False},
                request_only=True,
            )
        ],
    )
    def post(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError


class ModelsDoc(_OpenAITwin):
    @extend_schema(
        operation_id="openai_models",
        tags=["openai-compatible"],
        summary="Models: the project's agents and its providers' default models",
        responses={200: ModelListSerializer, **_OPENAI_ERRORS},
    )
    def get(self, request):  # pragma: no cover - documentation only
        raise NotImplementedError
