"""Request shapes of the chat endpoints (OpenAI's chat format, validated strictly)."""

from __future__ import annotations

from rest_framework import serializers

from config.serializers import StrictSerializer

MAX_MESSAGES = 500


class ChatMessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = serializers.JSONField(required=False, allow_null=True, help_text="Text, or a list of text parts.")
    name = serializers.CharField(required=False, max_length=64)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False, max_length=64)
    tool_call_id = serializers.CharField(required=False, max_length=120)

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
            return "".join(str(p.get("text") or "") for p in value)
        raise serializers.ValidationError("Content must be a string or a list of text parts.")

    def validate(self, attrs):
        if attrs["role"] == "developer":  # OpenAI's newer name for system
            attrs["role"] = "system"
        if attrs["role"] == "tool" and not attrs.get("tool_call_id"):
            raise serializers.ValidationError({"tool_call_id": ["Tool messages need the id of the call they answer."]})
        if attrs.get("content") is None and not attrs.get("tool_calls"):
            attrs["content"] = ""
        return attrs


class _Sampling(StrictSerializer):
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=128_000)
    stream = serializers.BooleanField(required=False, default=False)


class ChatCompletionRequestSerializer(_Sampling):
    """``POST /v1/chat/completions``. OpenAI parameters we do not act on (penalties, seed, ...)
    are accepted and ignored, so SDKs that send them work; anything else is refused."""

    model = serializers.CharField(
        max_length=200, help_text="An agent's name, `provider/model`, or a model of the default provider."
    )
    messages = serializers.ListField(child=ChatMessageSerializer(), min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=128_000)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    stop = serializers.JSONField(required=False, allow_null=True)
    tools = serializers.ListField(child=serializers.DictField(), required=False, max_length=128)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    user = serializers.CharField(required=False, max_length=256)
    n = serializers.IntegerField(required=False, min_value=1, max_value=1, help_text="Only 1 is supported.")
    stream_options = serializers.DictField(required=False, allow_null=True)
    # accepted for compatibility, not acted on
    presence_penalty = serializers.FloatField(required=False, allow_null=True)
    frequency_penalty = serializers.FloatField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True)
    response_format = serializers.JSONField(required=False, allow_null=True)
    logit_bias = serializers.JSONField(required=False, allow_null=True)
    logprobs = serializers.BooleanField(required=False, allow_null=True)
    top_logprobs = serializers.IntegerField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    metadata = serializers.JSONField(required=False, allow_null=True)
    store = serializers.BooleanField(required=False, allow_null=True)
    service_tier = serializers.CharField(required=False, allow_null=True)

    def validate_stop(self, value):
        if value is None or isinstance(value, str):
            return [value] if value else None
        if isinstance(value, list) and len(value) <= 4 and all(isinstance(v, str) for v in value):
            return value
        raise serializers.ValidationError("A string or up to 4 strings.")

    def validate(self, attrs):
        attrs["max_tokens"] = attrs.get("max_completion_tokens") or attrs.get("max_tokens")
        return attrs


class AgentChatRequestSerializer(_Sampling):
    """``POST /api/v1/agents/{id}/chat``: new ``messages``, optionally continuing a conversation."""

    messages = serializers.ListField(
        child=ChatMessageSerializer(), required=False, min_length=1, max_length=MAX_MESSAGES
    )
    message = serializers.CharField(required=False, max_length=100_000, help_text="Shorthand for one user message.")
    conversation_id = serializers.UUIDField(required=False, allow_null=True)
    new_conversation = serializers.BooleanField(
        required=False, default=True, help_text="Without conversation_id: keep this exchange as a new conversation."
    )

    def validate(self, attrs):
        if bool(attrs.get("messages")) == bool(attrs.get("message")):
            raise serializers.ValidationError("Give either messages or message.")
        if attrs.get("message"):
            attrs["messages"] = [{"role": "user", "content": attrs.pop("message")}]
        return attrs


class SummarizeRequestSerializer(_Sampling):
    text = serializers.CharField(max_length=200_000)
    style = serializers.ChoiceField(choices=["concise", "detailed", "bullet_points"], default="concise")
    max_length = serializers.IntegerField(required=False, min_value=10, max_value=5000, help_text="In words.")
    agent_id = serializers.UUIDField(required=False, allow_null=True, help_text="Whose provider and model to use.")


class TranslateRequestSerializer(_Sampling):
    text = serializers.CharField(max_length=200_000)
    source_language = serializers.CharField(max_length=64, default="auto")
    target_language = serializers.CharField(max_length=64)
    agent_id = serializers.UUIDField(required=False, allow_null=True, help_text="Whose provider and model to use.")
