from django.urls import path

from agents import chat_views

api_urlpatterns = [
    path("agents/<uuid:pk>/chat", chat_views.AgentChatView.as_view(), name="agent-chat"),
    path("summarize", chat_views.SummarizeView.as_view(), name="summarize"),
    path("translate", chat_views.TranslateView.as_view(), name="translate"),
]

openai_urlpatterns = [
    path("chat/completions", chat_views.ChatCompletionsView.as_view(), name="openai-chat-completions"),
    path("models", chat_views.ModelsView.as_view(), name="openai-models"),
]
