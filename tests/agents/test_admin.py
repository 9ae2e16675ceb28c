"""The Django admin for agents and usage: every page renders, writes go through the services and
stay inside the row's project, and no page ever holds a provider's key or a tool's headers."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from agents.models import Agent, Conversation, Provider, Run, Tool, ToolBinding
from projects.models import Project, Team
from tests.agents.factories import (
    AgentFactory,
    ConversationFactory,
    MessageFactory,
    ProviderFactory,
    RunEventFactory,
    RunFactory,
    ToolBindingFactory,
    ToolFactory,
)
from tests.projects.factories import ProjectFactory, TeamFactory
from tests.usage.factories import UsageRecordFactory
from usage.models import UsageRecord

PROVIDER_KEY = "sk-admin-0123456789-provider-secret"
HEADER_VALUE = "Bearer admin-tool-header-secret"


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("root@example.com", "a sturdy passphrase 42"))
    return client


@dataclass
class World:
    alpha: Project
    bravo: Project
    provider: Provider
    team: Team
    agent: Agent
    tool: Tool
    binding: ToolBinding
    conversation: Conversation
    run: Run
    usage: UsageRecord

    @property
    def objects(self) -> list:
        return [self.provider, self.agent, self.tool, self.conversation, self.run, self.usage]


@pytest.fixture
def world(db) -> World:
    alpha, bravo = ProjectFactory(name="Alpha"), ProjectFactory(name="Bravo")
    provider = ProviderFactory(project=alpha, name="Primary", api_key=PROVIDER_KEY, is_default=True)
    team = TeamFactory(project=alpha, name="Support")
    agent = AgentFactory(project=alpha, name="Helpdesk", provider=provider, team=team)
    tool = ToolFactory(project=alpha, name="get_order", headers={"Authorization": HEADER_VALUE})
    binding = ToolBindingFactory(project=alpha, agent=agent, tool=tool, config={"region": "eu"})
    conversation = ConversationFactory(project=alpha, agent=agent, title="Where is my parcel")
    MessageFactory(project=alpha, conversation=conversation, content="Hello there")
    MessageFactory(project=alpha, conversation=conversation, role="assistant", content="How can I help?")
    run = RunFactory(project=alpha, agent=agent, status=Run.Status.FAILED, error={"code": "provider_timeout"})
    RunEventFactory(run=run, type="started")
    RunEventFactory(run=run, type="error")
    usage = UsageRecordFactory(project=alpha, model="gpt-4o-mini")
    # Another project's rows, with secrets of their own, that must not leak onto Alpha's pages.
    ProviderFactory(project=bravo, name="Bravo provider", api_key=PROVIDER_KEY + "-bravo")
    ToolFactory(project=bravo, name="bravo_tool", headers={"X-Key": HEADER_VALUE + "-bravo"})
    return World(alpha, bravo, provider, team, agent, tool, binding, conversation, run, usage)


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def assert_no_secrets(response) -> None:
    html = response.content.decode()
    assert PROVIDER_KEY not in html
    assert HEADER_VALUE not in html


def form_data(response) -> dict:
    """What the change page would post back unchanged: the main form and its inline formsets."""
    forms = [response.context["adminform"].form]
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms.append(formset.management_form)
        forms.extend(formset.forms)
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


# --- every page renders -------------------------------------------------------------------

MODELS = [Provider, Agent, Tool, Conversation, Run, UsageRecord]


@pytest.mark.parametrize("model", MODELS)
def test_changelists_render_without_secrets(staff, world, model):
    response = staff.get(admin_url(model, "changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1
    assert_no_secrets(response)


@pytest.mark.parametrize(
    ("model", "query", "expected"),
    [
        (Provider, {"q": "prim", "kind__exact": "openai", "is_default__exact": "1"}, 1),
        (Agent, {"q": "help", "is_active__exact": "1"}, 1),
        (Tool, {"q": "get_ord", "method__exact": "GET"}, 1),
        (Conversation, {"q": "parcel"}, 1),
        (Run, {"status__exact": "failed"}, 1),
        (Run, {"status__exact": "succeeded"}, 0),
        (UsageRecord, {"status__exact": "succeeded", "operation__exact": "chat", "model": "gpt-4o-mini"}, 1),
    ],
)
def test_changelist_search_and_filters(staff, world, model, query, expected):
    response = staff.get(admin_url(model, "changelist"), query)

    assert response.status_code == 200
    assert response.context["cl"].result_count == expected


def test_relation_filters_name_the_project(staff, world):
    response = staff.get(admin_url(Agent, "changelist"), {"provider": str(world.provider.pk), "team": world.team.pk})

    assert response.context["cl"].result_count == 1
    assert "Primary (Alpha)" in response.content.decode()
    run_by_agent = staff.get(admin_url(Run, "changelist"), {"agent": str(world.agent.pk)})
    assert run_by_agent.context["cl"].result_count == 1


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_every_object_page_renders_without_secrets(staff, world, view):
    for obj in world.objects:
        response = staff.get(admin_url(type(obj), view, obj.pk))

        if view == "delete" and isinstance(obj, UsageRecord):
            assert response.status_code == 403  # the ledger is never deleted
            continue
        assert response.status_code == 200, (type(obj).__name__, view)
        assert_no_secrets(response)


@pytest.mark.parametrize("model", [Provider, Agent, Tool])
def test_add_pages_render(staff, world, model):
    response = staff.get(admin_url(model, "add"))

    assert response.status_code == 200
    assert "adminform" in response.context_data


@pytest.mark.parametrize("model", [Conversation, Run, UsageRecord])
def test_what_agents_write_cannot_be_added_or_edited(staff, world, model):
    obj = next(o for o in world.objects if isinstance(o, model))

    assert staff.get(admin_url(model, "add")).status_code == 403
    change = staff.get(admin_url(model, "change", obj.pk))
    assert change.status_code == 200 and not change.context["has_change_permission"]


def test_a_conversation_shows_its_messages_and_a_run_its_events(staff, world):
    conversation = staff.get(admin_url(Conversation, "change", world.conversation.pk)).content.decode()
    run = staff.get(admin_url(Run, "change", world.run.pk)).content.decode()

    assert "Hello there" in conversation and "How can I help?" in conversation
    assert "started" in run and "provider_timeout" in run


@pytest.mark.parametrize("model", [Provider, Agent, Tool, Conversation, Run, UsageRecord])
def test_changelist_queries_do_not_grow_with_rows(staff, world, model):
    url = admin_url(model, "changelist")
    staff.get(url)
    with CaptureQueriesContext(connection) as few:
        assert staff.get(url).status_code == 200
    for _ in range(3):
        project = ProjectFactory()
        binding = ToolBindingFactory(project=project)
        conversation = ConversationFactory(project=project, agent=binding.agent)
        MessageFactory(project=project, conversation=conversation)
        RunEventFactory(run=RunFactory(project=project, agent=binding.agent))
        ProviderFactory(project=project)
        UsageRecordFactory(project=project)
    with CaptureQueriesContext(connection) as many:
        response = staff.get(url)

    assert response.context["cl"].result_count > 3
    assert len(many) == len(few)


# --- providers ----------------------------------------------------------------------------


def _provider_form(project: Project, **fields) -> dict:
    return {
        "project": str(project.pk),
        "name": "Added",
        "kind": "openai",
        "base_url": "https://llm.example.com/v1",
        "organization": "",
        "new_api_key": "",
        "default_chat_model": "gpt-4o",
        "default_embedding_model": "",
        "timeout_seconds": "60",
        "max_retries": "2",
        **fields,
    }


def test_adding_a_provider_stores_its_key_encrypted_and_never_shows_it(staff, world):
    secret = "sk-added-in-admin-424242"

    response = staff.post(admin_url(Provider, "add"), _provider_form(world.bravo, new_api_key=secret))

    assert response.status_code == 302
    provider = Provider.objects.get(name="Added")
    assert provider.project == world.bravo and provider.api_key == secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM agents_provider WHERE id = %s", [provider.pk])
        assert secret not in cursor.fetchone()[0]
    for url in (admin_url(Provider, "change", provider.pk), admin_url(Provider, "changelist")):
        assert secret not in staff.get(url).content.decode()
    assert not any(secret in str(m) for m in get_messages(response.wsgi_request))


def test_the_key_is_kept_replaced_or_removed(staff, world):
    url = admin_url(Provider, "change", world.provider.pk)
    page = staff.get(url)
    data = form_data(page)
    assert data.get("new_api_key", "") == ""  # the password input renders empty

    staff.post(url, {**data, "name": "Renamed"})
    world.provider.refresh_from_db()
    assert (world.provider.name, world.provider.api_key) == ("Renamed", PROVIDER_KEY)

    staff.post(url, {**data, "new_api_key": "sk-rotated"})
    world.provider.refresh_from_db()
    assert world.provider.api_key == "sk-rotated"

    staff.post(url, {**data, "remove_api_key": "on"})
    world.provider.refresh_from_db()
    assert not world.provider.api_key


def test_making_a_provider_default_in_the_admin_unsets_the_other(staff, world):
    response = staff.post(admin_url(Provider, "add"), _provider_form(world.alpha, is_default="on"))

    assert response.status_code == 302
    assert list(Provider.objects.filter(project=world.alpha, is_default=True).values_list("name", flat=True)) == [
        "Added"
    ]


def test_provider_names_stay_unique_per_project(staff, world):
    response = staff.post(admin_url(Provider, "add"), _provider_form(world.alpha, name="Primary"))

    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors


def test_the_key_cannot_be_probed_through_changelist_lookups(staff, world):
    response = staff.get(admin_url(Provider, "changelist"), {"api_key__startswith": "sk"})

    assert response.status_code == 400


# --- agents and their tools ---------------------------------------------------------------


def test_an_agents_provider_and_team_must_be_of_its_project(staff, world):
    other_provider = Provider.objects.get(project=world.bravo)
    data = {
        "project": str(world.alpha.pk),
        "name": "Spy",
        "description": "",
        "instructions": "",
        "is_active": "on",
        "provider": str(other_provider.pk),
        "model": "",
        "temperature": "0.7",
        "max_tokens": "",
        "max_tool_rounds": "5",
        "memory_window": "20",
        "team": str(TeamFactory(project=world.bravo).pk),
        "metadata": "{}",
    }

    refused = staff.post(admin_url(Agent, "add"), data)
    accepted = staff.post(admin_url(Agent, "add"), {**data, "provider": str(world.provider.pk), "team": ""})

    assert set(refused.context["adminform"].form.errors) == {"provider", "team"}
    assert accepted.status_code == 302
    assert Agent.objects.get(name="Spy").provider == world.provider


def test_the_change_page_offers_only_the_projects_providers_teams_and_tools(staff, world):
    response = staff.get(admin_url(Agent, "change", world.agent.pk))

    form = response.context["adminform"].form
    assert set(form.fields["provider"].queryset) == {world.provider}
    assert set(form.fields["team"].queryset) == {world.team}
    [inline] = response.context["inline_admin_formsets"]
    assert set(inline.formset.forms[0].fields["tool"].queryset) == {world.tool}
    assert "bravo_tool" not in response.content.decode()


def test_tools_are_bound_and_unbound_inline(staff, world):
    url = admin_url(Agent, "change", world.agent.pk)
    data = form_data(staff.get(url))
    second = ToolFactory(project=world.alpha, name="cancel_order")
    data.update(
        {
            "bindings-TOTAL_FORMS": "2",
            "bindings-1-tool": str(second.pk),
            "bindings-1-config": '{"reason": "customer"}',
            "bindings-0-DELETE": "on",
        }
    )

    response = staff.post(url, data)

    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    [binding] = ToolBinding.objects.filter(agent=world.agent)
    assert (binding.tool, binding.config, binding.project) == (second, {"reason": "customer"}, world.alpha)


def test_a_tool_cannot_be_bound_twice_inline(staff, world):
    url = admin_url(Agent, "change", world.agent.pk)
    data = form_data(staff.get(url))
    data.update({"bindings-TOTAL_FORMS": "2", "bindings-1-tool": str(world.tool.pk), "bindings-1-config": "{}"})

    response = staff.post(url, data)

    assert response.status_code == 200
    assert ToolBinding.objects.filter(agent=world.agent).count() == 1


# --- tools --------------------------------------------------------------------------------


def test_a_tool_page_shows_header_names_only(staff, world):
    html = staff.get(admin_url(Tool, "change", world.tool.pk)).content.decode()

    assert "Authorization" in html
    assert HEADER_VALUE not in html


def test_editing_a_tool_keeps_its_headers_and_checks_its_url(staff, world):
    url = admin_url(Tool, "change", world.tool.pk)
    data = form_data(staff.get(url))

    refused = staff.post(url, {**data, "url_template": "http://169.254.169.254/{order_id}"})
    accepted = staff.post(url, {**data, "description": "Changed"})

    assert "url_template" in refused.context["adminform"].form.errors
    assert accepted.status_code == 302
    world.tool.refresh_from_db()
    assert world.tool.description == "Changed"
    assert world.tool.headers == {"Authorization": HEADER_VALUE}


def test_adding_a_tool_checks_its_parameters(staff, world):
    data = {
        "project": str(world.alpha.pk),
        "name": "lookup",
        "description": "",
        "method": "GET",
        "url_template": "https://api.example.com/{q}",
        "parameters": '{"type": "string"}',
        "timeout_seconds": "10",
    }

    refused = staff.post(admin_url(Tool, "add"), data)
    accepted = staff.post(
        admin_url(Tool, "add"), {**data, "parameters": '{"type": "object", "properties": {"q": {"type": "string"}}}'}
    )

    assert "parameters" in refused.context["adminform"].form.errors
    assert accepted.status_code == 302
    assert Tool.objects.get(name="lookup").project == world.alpha


# --- runs ---------------------------------------------------------------------------------


def test_the_retry_action_is_registered(staff, world):
    response = staff.get(admin_url(Run, "changelist"))

    assert "retry_selected" in dict(response.context["action_form"].fields["action"].choices)


def test_the_retry_action_retries_each_run_through_the_runs_module(staff, world, monkeypatch):
    retried = []
    fake = types.ModuleType("agents.runs")
    fake.run_retry = lambda *, run: retried.append(run.pk)
    monkeypatch.setitem(sys.modules, "agents.runs", fake)
    other = RunFactory(project=world.alpha, agent=world.agent, status=Run.Status.CANCELLED)

    response = staff.post(
        admin_url(Run, "changelist"),
        {"action": "retry_selected", "_selected_action": [str(world.run.pk), str(other.pk)], "index": 0},
    )

    assert response.status_code == 302
    assert sorted(retried) == sorted([world.run.pk, other.pk])
    assert "Retried 2 runs." in [str(m) for m in get_messages(response.wsgi_request)]


def test_a_run_the_runs_module_refuses_is_reported(staff, world, monkeypatch):
    from config.exceptions import Conflict

    def refuse(*, run):
        raise Conflict("This run is still running.")

    fake = types.ModuleType("agents.runs")
    fake.run_retry = refuse
    monkeypatch.setitem(sys.modules, "agents.runs", fake)

    response = staff.post(
        admin_url(Run, "changelist"), {"action": "retry_selected", "_selected_action": [str(world.run.pk)], "index": 0}
    )

    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Not retried" in message and "still running" in message


def test_the_retry_action_requeues_failed_runs_with_the_real_runs_module(staff, world):
    succeeded = RunFactory(project=world.alpha, agent=world.agent, status=Run.Status.SUCCEEDED, output="done")

    response = staff.post(
        admin_url(Run, "changelist"),
        {"action": "retry_selected", "_selected_action": [str(world.run.pk), str(succeeded.pk)], "index": 0},
    )

    world.run.refresh_from_db()
    succeeded.refresh_from_db()
    assert (world.run.status, world.run.error) == (Run.Status.QUEUED, None)
    assert (succeeded.status, succeeded.output) == (Run.Status.SUCCEEDED, "done")
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Retried 1 run." in shown and any("Not retried" in m and str(succeeded.pk) in m for m in shown)
