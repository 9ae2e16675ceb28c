"""Routes of the runs API. Plain routes rather than a router: runs are read-only here but for
``cancel``, and are created under their agent (``agents/{id}/runs/``, which the agents router's
detail pattern does not match)."""

from django.urls import re_path

from agents.run_views import AgentRunViewSet, RunEventsView, RunViewSet

_UUID = r"(?P<pk>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"

urlpatterns = [
    re_path(rf"^agents/{_UUID}/runs/?$", AgentRunViewSet.as_view({"post": "create_run"}), name="agent-runs"),
    re_path(r"^runs/?$", RunViewSet.as_view({"get": "list"}), name="run-list"),
    re_path(rf"^runs/{_UUID}/?$", RunViewSet.as_view({"get": "retrieve"}), name="run-detail"),
    re_path(rf"^runs/{_UUID}/cancel/?$", RunViewSet.as_view({"post": "cancel"}), name="run-cancel"),
    re_path(rf"^runs/{_UUID}/events/?$", RunEventsView.as_view(), name="run-events"),
]
