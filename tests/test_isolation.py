"""Tenant isolation, for every endpoint, found by walking the URL configuration.

Every DRF view under ``/api/v1/`` must be either registered in ``OBJECT_FACTORIES`` (it serves
project data: each of its routes is then probed below) or listed in ``NOT_PROJECT_DATA`` (it
serves the caller's own account). A new endpoint that is neither fails
``test_every_api_endpoint_is_covered``, so it cannot ship without isolation tests.

For each project-data route, project B's owner (JWT) and B's admin API key must get 404 on
project A's objects for every method, leave them unchanged, and never see them in lists; and
B's user naming project A in ``X-Project-ID`` must get 404.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import views as account_views
from agents import chat_views, run_views
from agents import views as agent_views
from agents.models import Agent
from knowledge import views as knowledge_views
from projects import views as project_views
from tests.agents.factories import AgentFactory, ProviderFactory, RunFactory, ToolBindingFactory, ToolFactory
from tests.conftest import Tenant
from tests.knowledge.factories import CollectionFactory, DocumentFactory
from tests.projects.factories import APIKeyFactory, MembershipFactory, TeamFactory

# view class -> how to make one object of it in a tenant's project
OBJECT_FACTORIES: dict[type, Callable[[Tenant], object]] = {
    project_views.ProjectViewSet: lambda t: t.project,
    project_views.MemberViewSet: lambda t: MembershipFactory(project=t.project),
    project_views.TeamViewSet: lambda t: TeamFactory(project=t.project),
    project_views.APIKeyViewSet: lambda t: APIKeyFactory(project=t.project),
    agent_views.ProviderViewSet: lambda t: ProviderFactory(project=t.project),
    agent_views.AgentViewSet: lambda t: AgentFactory(project=t.project),
    agent_views.ToolViewSet: lambda t: ToolFactory(project=t.project),
    agent_views.ToolBindingViewSet: lambda t: ToolBindingFactory(project=t.project),
    chat_views.AgentChatView: lambda t: Agent.objects.create(project=t.project, name=f"agent-{uuid.uuid4().hex[:8]}"),
    run_views.AgentRunViewSet: lambda t: AgentFactory(project=t.project),
    run_views.RunViewSet: lambda t: RunFactory(project=t.project),
    run_views.RunEventsView: lambda t: RunFactory(project=t.project),
    knowledge_views.CollectionViewSet: lambda t: CollectionFactory(project=t.project),
    knowledge_views.CollectionDocumentsViewSet: lambda t: CollectionFactory(project=t.project),
    knowledge_views.DocumentViewSet: lambda t: DocumentFactory(collection=CollectionFactory(project=t.project)),
    knowledge_views.DocumentChunksViewSet: lambda t: DocumentFactory(collection=CollectionFactory(project=t.project)),
}

# views that act in the caller's project without naming an object in their URL; what their body
# may name (an agent, a model) is probed by the tests at the end of this module
CALLER_PROJECT_VIEWS: set[type] = {
    chat_views.SummarizeView,
    chat_views.TranslateView,
    chat_views.ChatCompletionsView,
    chat_views.ModelsView,
    knowledge_views.MultiSearchViewSet,
}

# views that act on the caller's own account, not on a project's data
NOT_PROJECT_DATA: set[type] = {
    account_views.RegisterView,
    account_views.LoginView,
    account_views.RefreshView,
    account_views.LogoutView,
    account_views.MeView,
    account_views.PasswordChangeView,
}


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


_PK = re.compile(r"<(\w+:)?pk>|\(\?P<pk>")


def api_routes():
    """(url name, view class, {method: action}, is_detail) for every API route: DRF views and
    our async views, under api/v1/ and the OpenAI-compatible v1/."""
    routes = []
    for route, pattern in _walk(get_resolver().url_patterns):
        # view_class first: async views carry a DRF documentation twin in ``cls``
        view_class = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
        if not route.startswith(("api/v1/", "v1/")) or view_class is None:
            continue
        actions = getattr(pattern.callback, "actions", None) or {
            m: m
            for m in ("get", "post", "put", "patch", "delete")
            if hasattr(view_class, m) and m in getattr(view_class, "http_method_names", [m])
        }
        routes.append((pattern.name, view_class, actions, bool(_PK.search(route))))
    return routes


ROUTES = api_routes()
PROJECT_ROUTES = [r for r in ROUTES if r[1] in OBJECT_FACTORIES]
PRINCIPALS = ["owner", "admin_key"]


def test_every_api_endpoint_is_covered():
    uncovered = sorted(
        {f"{name} ({cls.__name__})" for name, cls, _, _ in ROUTES}
        - {
            f"{name} ({cls.__name__})"
            for name, cls, _, _ in ROUTES
            if cls in OBJECT_FACTORIES or cls in NOT_PROJECT_DATA or cls in CALLER_PROJECT_VIEWS
        }
    )
    assert not uncovered, f"endpoints without isolation coverage: {uncovered}"
    assert PROJECT_ROUTES, "the walk found no project routes; it is broken"


def _allowed(view_class, method: str) -> bool:
    return method in getattr(view_class, "http_method_names", [method])


DETAIL_CASES = [
    pytest.param(name, cls, method, who, id=f"{name}-{method}-{who}")
    for name, cls, actions, is_detail in PROJECT_ROUTES
    if is_detail
    for method in actions
    if _allowed(cls, method)
    for who in PRINCIPALS
]
LIST_CASES = [
    pytest.param(name, cls, who, id=f"{name}-{who}")
    for name, cls, actions, is_detail in PROJECT_ROUTES
    if not is_detail and "get" in actions
    for who in PRINCIPALS
]


@pytest.mark.parametrize(("url_name", "view_class", "method", "who"), DETAIL_CASES)
def test_other_projects_objects_are_404(tenant, other_tenant, url_name, view_class, method, who):
    theirs = OBJECT_FACTORIES[view_class](tenant)
    before = type(theirs).objects.filter(pk=theirs.pk).values().first()
    client = other_tenant.client(who)

    response = getattr(client, method)(reverse(url_name, kwargs={"pk": theirs.pk}), {}, format="json")

    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] in ("not_found", "project_not_found")
    assert type(theirs).objects.filter(pk=theirs.pk).values().first() == before


@pytest.mark.parametrize(("url_name", "view_class", "who"), LIST_CASES)
def test_lists_show_only_own_project(tenant, other_tenant, url_name, view_class, who):
    theirs = OBJECT_FACTORIES[view_class](tenant)
    ours = OBJECT_FACTORIES[view_class](other_tenant)

    response = other_tenant.client(who).get(reverse(url_name), {"page_size": 200})

    assert response.status_code == 200, response.content
    ids = {row["id"] for row in response.json()["results"]}
    assert str(ours.pk) in ids  # the list works, so the absence below means something
    assert str(theirs.pk) not in ids


@pytest.mark.parametrize(
    ("url_name", "view_class", "is_detail"),
    [pytest.param(n, c, d, id=n) for n, c, _, d in PROJECT_ROUTES if c is not project_views.ProjectViewSet],
)
def test_naming_another_project_in_the_header_is_404(tenant, other_tenant, url_name, view_class, is_detail):
    theirs = OBJECT_FACTORIES[view_class](tenant)
    client = other_tenant.client("owner")
    client.defaults["HTTP_X_PROJECT_ID"] = str(tenant.project.pk)
    url = reverse(url_name, kwargs={"pk": theirs.pk}) if is_detail else reverse(url_name)

    response = client.get(url)

    assert response.status_code in (404, 405), response.content
    if response.status_code == 404:
        assert response.json()["error"]["code"] == "project_not_found"


@pytest.mark.parametrize(
    "url_name", sorted({n for n, c, _, d in PROJECT_ROUTES if not d and c is not project_views.ProjectViewSet})
)
def test_an_api_key_cannot_reach_another_project_by_header(tenant, other_tenant, url_name):
    client = other_tenant.client("admin_key")
    client.defaults["HTTP_X_PROJECT_ID"] = str(tenant.project.pk)

    response = client.get(reverse(url_name))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "project_not_found"


# --- endpoints that name project rows in their body -----------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/v1/summarize", {"text": "hello"}), ("/api/v1/translate", {"text": "hello", "target_language": "French"})],
)
def test_one_shot_endpoints_refuse_another_projects_agent(tenant, other_tenant, path, body):
    theirs = OBJECT_FACTORIES[chat_views.AgentChatView](tenant)
    body = {**body, "agent_id": str(theirs.pk)}

    response = other_tenant.client("write_key").post(path, body, format="json")

    assert response.status_code == 404, response.content


def test_openai_models_lists_only_the_callers_agents(tenant, other_tenant):
    theirs = OBJECT_FACTORIES[chat_views.AgentChatView](tenant)
    ours = OBJECT_FACTORIES[chat_views.AgentChatView](other_tenant)

    response = other_tenant.client("read_key").get("/v1/models")

    ids = {m["id"] for m in response.json()["data"]}
    assert ours.name in ids and theirs.name not in ids


def test_openai_chat_never_resolves_another_projects_agent(tenant, other_tenant, fake_openai):
    from agents.models import Provider

    theirs = Agent.objects.create(project=tenant.project, name="secret-agent", instructions="TOP SECRET")
    Provider.objects.create(
        project=other_tenant.project, name="up", base_url=fake_openai.base_url, default_chat_model="m", is_default=True
    )

    response = other_tenant.client("write_key").post(
        "/v1/chat/completions", {"model": theirs.name, "messages": [{"role": "user", "content": "hi"}]}, format="json"
    )

    assert response.status_code == 200, response.content
    sent = fake_openai.chat_requests()[0].body
    assert sent["model"] == "secret-agent"  # passed upstream as a plain model name
    assert all("TOP SECRET" not in str(m.get("content")) for m in sent["messages"])
