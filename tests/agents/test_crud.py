"""Providers, agents, tools and tool bindings through the API: roles, secrets, defaults,
relations that must stay inside the project, and the validation of tool URLs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent, Provider, Tool, ToolBinding
from tests.agents.factories import AgentFactory, ProviderFactory, ToolBindingFactory, ToolFactory
from tests.projects.factories import TeamFactory

pytestmark = pytest.mark.django_db

API_KEY = "sk-live-0123456789-very-secret-provider-key"
HEADER_SECRET = "Bearer tool-header-secret-98765"
ORDER_PARAMETERS = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "expand": {"type": "boolean"}},
    "required": ["order_id"],
}


def _raw_column(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _errors(response) -> dict:
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    return response.json()["error"]["details"]


# --- providers ----------------------------------------------------------------------------


class TestProviders:
    def test_an_admin_adds_a_provider_and_its_key_is_never_returned(self, tenant):
        client = tenant.client("admin_key")

        created = client.post(
            "/api/v1/providers/",
            {"name": "OpenAI", "api_key": API_KEY, "default_chat_model": "gpt-4o", "organization": "org-1"},
        )
        pk = created.json()["id"]
        listed = client.get("/api/v1/providers/")
        detail = tenant.client("viewer").get(f"/api/v1/providers/{pk}/")

        assert created.status_code == 201, created.content
        assert created.json()["has_api_key"] is True
        assert detail.status_code == 200 and detail.json()["has_api_key"] is True
        for response in (created, listed, detail):
            assert "api_key" not in response.json() and API_KEY not in response.content.decode()
        assert "api_key" not in listed.json()["results"][0]

    def test_the_key_is_stored_encrypted(self, tenant):
        response = tenant.client("owner").post("/api/v1/providers/", {"name": "OpenAI", "api_key": API_KEY})

        stored = _raw_column("agents_provider", "api_key", response.json()["id"])
        assert API_KEY not in stored and stored
        assert Provider.objects.get(pk=response.json()["id"]).api_key == API_KEY

    @pytest.mark.parametrize(("who", "code"), [("member", "insufficient_role"), ("write_key", "insufficient_scope")])
    def test_only_admins_write_providers(self, tenant, who, code):
        provider = ProviderFactory(project=tenant.project)
        client = tenant.client(who)

        responses = [
            client.post("/api/v1/providers/", {"name": "Mine", "api_key": API_KEY}),
            client.patch(f"/api/v1/providers/{provider.pk}/", {"api_key": "stolen"}),
            client.delete(f"/api/v1/providers/{provider.pk}/"),
        ]

        assert [r.status_code for r in responses] == [403, 403, 403]
        assert all(r.json()["error"]["code"] == code for r in responses)
        provider.refresh_from_db()
        assert Provider.objects.filter(project=tenant.project).count() == 1
        assert provider.api_key != "stolen"

    @pytest.mark.parametrize("who", ["viewer", "read_key"])
    def test_viewers_read_providers(self, tenant, who):
        ProviderFactory(project=tenant.project, name="Shared")

        response = tenant.client(who).get("/api/v1/providers/")

        assert response.status_code == 200
        assert [p["name"] for p in response.json()["results"]] == ["Shared"]

    def test_omitting_the_key_keeps_it_and_an_empty_key_removes_it(self, tenant):
        provider = ProviderFactory(project=tenant.project, api_key=API_KEY)
        url = f"/api/v1/providers/{provider.pk}/"
        client = tenant.client("owner")

        renamed = client.patch(url, {"name": "Renamed"})
        provider.refresh_from_db()
        assert renamed.json()["has_api_key"] is True and provider.api_key == API_KEY

        removed = client.patch(url, {"api_key": ""})
        provider.refresh_from_db()
        assert removed.json()["has_api_key"] is False and not provider.api_key

    def test_making_a_provider_the_default_unsets_the_previous_default(self, tenant, other_tenant):
        first = ProviderFactory(project=tenant.project, is_default=True)
        second = ProviderFactory(project=tenant.project)
        theirs = ProviderFactory(project=other_tenant.project, is_default=True)
        client = tenant.client("owner")

        switched = client.patch(f"/api/v1/providers/{second.pk}/", {"is_default": True})
        created = client.post("/api/v1/providers/", {"name": "Third", "is_default": True})

        assert switched.status_code == 200 and created.status_code == 201, created.content
        defaults = Provider.objects.filter(project=tenant.project, is_default=True)
        assert [str(p.pk) for p in defaults] == [created.json()["id"]]
        assert client.get("/api/v1/providers/", {"is_default": "true"}).json()["count"] == 1
        theirs.refresh_from_db()
        assert theirs.is_default  # another project's default is not ours to change
        first.refresh_from_db()
        assert not first.is_default

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "X", "base_url": "ftp://files.example.com/"}, "base_url"),
            ({"name": "X", "base_url": "not a url"}, "base_url"),
            ({"name": "X", "kind": "anthropic"}, "kind"),
            ({"name": "X", "timeout_seconds": 0}, "timeout_seconds"),
            ({"name": "X", "max_retries": 11}, "max_retries"),
            ({"name": "Taken"}, "name"),
            ({"name": "X", "has_api_key": True}, "has_api_key"),
        ],
    )
    def test_invalid_providers_are_refused(self, tenant, body, field):
        ProviderFactory(project=tenant.project, name="Taken")

        response = tenant.client("owner").post("/api/v1/providers/", body)

        assert field in _errors(response)
        assert Provider.objects.filter(project=tenant.project).count() == 1

    def test_the_same_name_is_fine_in_another_project(self, tenant, other_tenant):
        ProviderFactory(project=other_tenant.project, name="OpenAI")

        assert tenant.client("owner").post("/api/v1/providers/", {"name": "OpenAI"}).status_code == 201

    def test_deleting_a_provider_leaves_its_agents_on_the_default(self, tenant):
        provider = ProviderFactory(project=tenant.project)
        agent = AgentFactory(project=tenant.project, provider=provider)

        assert tenant.client("owner").delete(f"/api/v1/providers/{provider.pk}/").status_code == 204

        agent.refresh_from_db()
        assert agent.provider is None


# --- agents -------------------------------------------------------------------------------


class TestAgents:
    def test_an_agent_needs_only_a_name_and_instructions(self, tenant, settings):
        response = tenant.client("write_key").post(
            "/api/v1/agents/", {"name": "Support", "instructions": "Be helpful and brief."}
        )

        assert response.status_code == 201, response.content
        body = response.json()
        assert body["provider"] is None and body["model"] == ""
        assert body["effective_provider"] is None
        assert body["effective_model"] == settings.DEFAULT_CHAT_MODEL
        assert body["tools"] == [] and body["metadata"] == {} and body["is_active"] is True
        agent = Agent.objects.get(pk=body["id"])
        assert agent.project == tenant.project and agent.instructions == "Be helpful and brief."

    def test_an_agent_without_a_provider_follows_the_projects_default(self, tenant):
        default = ProviderFactory(project=tenant.project, is_default=True, default_chat_model="gpt-4.1")
        agent = AgentFactory(project=tenant.project)

        body = tenant.client("viewer").get(f"/api/v1/agents/{agent.pk}/").json()

        assert body["provider"] is None
        assert body["effective_provider"] == str(default.pk)
        assert body["effective_model"] == "gpt-4.1"

    def test_the_effective_model_is_the_agents_own_then_its_providers(self, tenant, settings):
        openai = ProviderFactory(project=tenant.project, default_chat_model="")
        local = ProviderFactory(project=tenant.project, kind=Provider.Kind.LOCAL, default_chat_model="")
        named = AgentFactory(project=tenant.project, provider=openai, model="gpt-4o")
        unnamed = AgentFactory(project=tenant.project, provider=openai)
        on_local = AgentFactory(project=tenant.project, provider=local)

        got = {a["id"]: a["effective_model"] for a in tenant.client("owner").get("/api/v1/agents/").json()["results"]}

        assert got[str(named.pk)] == "gpt-4o"
        assert got[str(unnamed.pk)] is None  # an OpenAI-compatible provider with no default: name a model
        assert got[str(on_local.pk)] == settings.DEFAULT_CHAT_MODEL

    def test_a_member_creates_a_fully_configured_agent(self, tenant):
        provider = ProviderFactory(project=tenant.project)
        team = TeamFactory(project=tenant.project)
        body = {
            "name": "Billing",
            "description": "Invoices",
            "instructions": "Help with invoices.",
            "provider": str(provider.pk),
            "model": "gpt-4o",
            "temperature": 0.2,
            "max_tokens": 800,
            "team": str(team.pk),
            "is_active": False,
            "metadata": {"locale": "en"},
            "max_tool_rounds": 3,
            "memory_window": 10,
        }

        response = tenant.client("member").post("/api/v1/agents/", body)

        assert response.status_code == 201, response.content
        assert {k: response.json()[k] for k in body} == body
        assert response.json()["effective_provider"] == str(provider.pk)

    @pytest.mark.parametrize("who", ["viewer", "read_key"])
    def test_viewers_cannot_write_agents(self, tenant, who):
        agent = AgentFactory(project=tenant.project, name="Keep")
        client = tenant.client(who)

        assert client.post("/api/v1/agents/", {"name": "New"}).status_code == 403
        assert client.patch(f"/api/v1/agents/{agent.pk}/", {"name": "Changed"}).status_code == 403
        assert client.delete(f"/api/v1/agents/{agent.pk}/").status_code == 403
        assert client.get(f"/api/v1/agents/{agent.pk}/").status_code == 200
        assert list(Agent.objects.values_list("name", flat=True)) == ["Keep"]

    @pytest.mark.parametrize("field", ["provider", "team"])
    def test_another_projects_provider_or_team_is_refused_and_nothing_is_written(self, tenant, other_tenant, field):
        theirs = {"provider": ProviderFactory, "team": TeamFactory}[field](project=other_tenant.project)
        client = tenant.client("owner")

        foreign = client.post("/api/v1/agents/", {"name": "Spy", field: str(theirs.pk)})
        missing = client.post("/api/v1/agents/", {"name": "Spy", field: "00000000-0000-0000-0000-000000000000"})

        message = _errors(foreign)[field][0]
        assert f"another project's {field}" in message
        # A foreign id reads exactly like an id that does not exist.
        assert message.replace(str(theirs.pk), "ID") == _errors(missing)[field][0].replace(
            "00000000-0000-0000-0000-000000000000", "ID"
        )
        assert not Agent.objects.exists()

    def test_an_agent_cannot_be_moved_onto_another_projects_provider(self, tenant, other_tenant):
        agent = AgentFactory(project=tenant.project)
        theirs = ProviderFactory(project=other_tenant.project)

        response = tenant.client("owner").patch(f"/api/v1/agents/{agent.pk}/", {"provider": str(theirs.pk)})

        assert "provider" in _errors(response)
        agent.refresh_from_db()
        assert agent.provider is None

    def test_a_malformed_relation_id_is_a_field_error(self, tenant):
        assert "provider" in _errors(tenant.client("owner").post("/api/v1/agents/", {"name": "A", "provider": "x"}))

    def test_names_are_unique_per_project(self, tenant, other_tenant):
        AgentFactory(project=tenant.project, name="Support")
        other = AgentFactory(project=tenant.project, name="Sales")
        AgentFactory(project=other_tenant.project, name="Elsewhere")
        client = tenant.client("owner")

        duplicate = client.post("/api/v1/agents/", {"name": "Support"})
        renamed = client.patch(f"/api/v1/agents/{other.pk}/", {"name": "Support"})
        same_as_other_project = client.post("/api/v1/agents/", {"name": "Elsewhere"})
        unchanged_name = client.patch(f"/api/v1/agents/{other.pk}/", {"name": "Sales", "model": "m"})

        assert "name" in _errors(duplicate) and "name" in _errors(renamed)
        assert same_as_other_project.status_code == 201
        assert unchanged_name.status_code == 200

    def test_a_racing_duplicate_is_still_a_400(self, tenant):
        """The serializer's check passes for both racers; the constraint decides, as a 400."""
        from agents import services

        AgentFactory(project=tenant.project, name="Support")

        with pytest.raises(services.ValidationError) as caught:
            services.agent_create(project=tenant.project, name="Support")

        assert "name" in caught.value.message_dict

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "A", "temperature": 2.5}, "temperature"),
            ({"name": "A", "max_tokens": 0}, "max_tokens"),
            ({"name": "A", "metadata": ["not", "an", "object"]}, "metadata"),
            ({"name": "A", "memory_window": 0}, "memory_window"),
            ({"name": "A", "tools": []}, "tools"),
            ({"name": "A", "effective_model": "x"}, "effective_model"),
            ({"name": ""}, "name"),
            ({"instructions": "no name"}, "name"),
        ],
    )
    def test_invalid_agents_are_refused(self, tenant, body, field):
        assert field in _errors(tenant.client("owner").post("/api/v1/agents/", body))
        assert not Agent.objects.exists()

    def test_patch_changes_only_what_is_sent(self, tenant):
        provider = ProviderFactory(project=tenant.project)
        team = TeamFactory(project=tenant.project)
        agent = AgentFactory(project=tenant.project, provider=provider, team=team, temperature=0.3)

        response = tenant.client("owner").patch(f"/api/v1/agents/{agent.pk}/", {"provider": None, "model": "m2"})

        assert response.status_code == 200, response.content
        agent.refresh_from_db()
        assert (agent.provider, agent.model, agent.team, agent.temperature) == (None, "m2", team, 0.3)

    def test_deleting_an_agent_removes_its_bindings(self, tenant):
        binding = ToolBindingFactory(project=tenant.project)

        assert tenant.client("owner").delete(f"/api/v1/agents/{binding.agent_id}/").status_code == 204

        assert not ToolBinding.objects.exists()
        assert Tool.objects.filter(pk=binding.tool_id).exists()

    def test_filters_and_search(self, tenant):
        provider = ProviderFactory(project=tenant.project)
        team = TeamFactory(project=tenant.project)
        on_provider = AgentFactory(project=tenant.project, name="Alpha desk", provider=provider)
        in_team = AgentFactory(project=tenant.project, name="Beta desk", team=team, is_active=False)
        with_tool = ToolBindingFactory(project=tenant.project, agent=AgentFactory(project=tenant.project)).agent
        client = tenant.client("owner")

        def names(**query):
            return {a["name"] for a in client.get("/api/v1/agents/", query).json()["results"]}

        assert names(provider=provider.pk) == {on_provider.name}
        assert names(team=team.pk) == {in_team.name}
        assert names(is_active="false") == {in_team.name}
        assert names(has_provider="true") == {on_provider.name}
        assert names(tool=with_tool.bindings.get().tool_id) == {with_tool.name}
        assert names(search="desk") == {on_provider.name, in_team.name}
        assert client.get("/api/v1/agents/", {"ordering": "-name"}).json()["results"][0]["name"] == in_team.name

    def test_listing_agents_takes_the_same_queries_for_many_rows(self, tenant):
        ProviderFactory(project=tenant.project, is_default=True)
        client = tenant.client("owner")

        def add_agents(n):
            provider = ProviderFactory(project=tenant.project)
            for _ in range(n):
                team = TeamFactory(project=tenant.project)
                agent = AgentFactory(project=tenant.project, provider=provider, team=team)
                ToolBindingFactory(project=tenant.project, agent=agent)
                ToolBindingFactory(project=tenant.project, agent=agent)

        add_agents(1)
        client.get("/api/v1/agents/")
        with CaptureQueriesContext(connection) as few:
            client.get("/api/v1/agents/")
        add_agents(6)
        with CaptureQueriesContext(connection) as many:
            response = client.get("/api/v1/agents/")

        assert response.json()["count"] == 7
        assert all(len(a["tools"]) == 2 for a in response.json()["results"])
        assert len(many) == len(few)
        assert not any("api_key" in q["sql"] for q in many.captured_queries)  # no credentials decrypted


# --- tools --------------------------------------------------------------------------------


def _tool(**overrides) -> dict:
    return {
        "name": "get_order",
        "description": "Fetch an order",
        "method": "GET",
        "url_template": "https://api.example.com/orders/{order_id}",
        "headers": {"Authorization": HEADER_SECRET, "X-Tenant": "acme"},
        "parameters": ORDER_PARAMETERS,
        "timeout_seconds": 5,
        **overrides,
    }


class TestTools:
    def test_a_member_creates_a_tool_whose_headers_are_never_returned(self, tenant):
        client = tenant.client("member")

        created = client.post("/api/v1/tools/", _tool())
        pk = created.json()["id"]
        listed = client.get("/api/v1/tools/")
        detail = client.get(f"/api/v1/tools/{pk}/")

        assert created.status_code == 201, created.content
        for response in (created, listed, detail):
            assert HEADER_SECRET not in response.content.decode()
        assert detail.json()["header_names"] == ["Authorization", "X-Tenant"]
        assert "headers" not in detail.json()
        assert detail.json()["parameters"] == ORDER_PARAMETERS
        assert HEADER_SECRET not in _raw_column("agents_tool", "headers", pk)
        assert Tool.objects.get(pk=pk).headers["Authorization"] == HEADER_SECRET

    def test_parameters_default_to_an_empty_object_schema(self, tenant):
        response = tenant.client("owner").post(
            "/api/v1/tools/", {"name": "ping", "url_template": "https://status.example.com/ping"}
        )

        assert response.status_code == 201, response.content
        assert response.json()["parameters"] == {"type": "object", "properties": {}}
        assert response.json()["header_names"] == []

    @pytest.mark.parametrize("who", ["viewer", "read_key"])
    def test_viewers_cannot_write_tools(self, tenant, who):
        tool = ToolFactory(project=tenant.project)

        assert tenant.client(who).post("/api/v1/tools/", _tool(name="x")).status_code == 403
        assert tenant.client(who).patch(f"/api/v1/tools/{tool.pk}/", {"name": "y"}).status_code == 403
        assert Tool.objects.get().name == tool.name

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.5/orders/{order_id}",
            "http://192.168.1.1/{order_id}",
            "http://172.16.0.1/{order_id}",
            "http://127.0.0.1:8000/{order_id}",
            "http://127.0.0.1./{order_id}",
            "http://0.0.0.0/{order_id}",
            "http://100.64.0.1/{order_id}",
            "http://169.254.169.254/latest/meta-data/{order_id}",
            "http://[::1]/{order_id}",
            "http://[fe80::1]/{order_id}",
            "http://[fd00::1]/{order_id}",
            "http://[::ffff:127.0.0.1]/{order_id}",
            "http://127.1/{order_id}",
            "http://0x7f.0.0.1/{order_id}",
            "http://2130706433/{order_id}",
            "http://localhost/{order_id}",
            "http://LOCALHOST.:8080/{order_id}",
            "http://api.localhost/{order_id}",
            "http://224.0.0.1/{order_id}",
        ],
    )
    def test_private_loopback_and_link_local_targets_are_refused(self, tenant, url):
        response = tenant.client("owner").post("/api/v1/tools/", _tool(url_template=url))

        assert "url_template" in _errors(response)
        assert not Tool.objects.exists()

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8000/orders/{order_id}",
            "http://localhost/orders/{order_id}",
            "http://169.254.169.254/{order_id}",
            "http://[::1]:8080/{order_id}",
        ],
    )
    def test_private_targets_are_allowed_when_the_deployment_says_so(self, tenant, settings, url):
        settings.TOOLS_ALLOW_PRIVATE_NETWORKS = True

        response = tenant.client("owner").post("/api/v1/tools/", _tool(url_template=url))

        assert response.status_code == 201, response.content

    @pytest.mark.parametrize(
        ("url", "fragment"),
        [
            ("https://api.example.com/orders/{order}", "not declared"),
            ("https://api.example.com/orders/{order-id}", "not a valid name"),
            ("https://api.example.com/orders/{order_id", "Unbalanced"),
            ("https://api.example.com/orders/order_id}", "Unbalanced"),
            ("https://{order_id}.example.com/", "never in the host"),
            ("https://api.example.com:{order_id}/", "never in the host"),
            ("ftp://api.example.com/{order_id}", "http:// or https://"),
            ("api.example.com/{order_id}", "http:// or https://"),
            ("https://user:secret@api.example.com/{order_id}", "credentials"),
            ("https:///{order_id}", "host"),
            ("https://api.example.com/a b/{order_id}", "whitespace"),
            ("https://exa mple.com/{order_id}", "whitespace"),
            ("https://api.example.com:99999/{order_id}", "port"),
        ],
    )
    def test_malformed_url_templates_are_refused(self, tenant, url, fragment):
        response = tenant.client("owner").post("/api/v1/tools/", _tool(url_template=url))

        messages = _errors(response)["url_template"]
        assert any(fragment in m for m in messages), messages

    def test_public_hosts_and_query_placeholders_are_fine(self, tenant):
        url = "https://api.example.com:8443/v1/orders/{order_id}?expand={expand}"

        response = tenant.client("owner").post("/api/v1/tools/", _tool(url_template=url))

        assert response.status_code == 201, response.content

    @pytest.mark.parametrize(
        "parameters",
        [
            {"type": "string"},
            {"properties": {"order_id": {"type": "string"}}},
            {"type": "object", "properties": ["order_id"]},
            {"type": "object", "properties": {"order_id": {"type": "no-such-type"}}},
            {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": "order_id"},
            ["not", "an", "object"],
        ],
    )
    def test_parameters_must_be_an_object_json_schema(self, tenant, parameters):
        response = tenant.client("owner").post("/api/v1/tools/", _tool(parameters=parameters))

        assert "parameters" in _errors(response)

    @pytest.mark.parametrize(
        "headers",
        [
            {"Host": "internal.example"},
            {"content-length": "5"},
            {"X-Evil": "a\r\nInjected: yes"},
            {"bad name": "x"},
            {"X-Nested": {"not": "a string"}},
            {f"X-H{i}": "v" for i in range(31)},
        ],
    )
    def test_unsafe_headers_are_refused(self, tenant, headers):
        response = tenant.client("owner").post("/api/v1/tools/", _tool(headers=headers))

        assert "headers" in _errors(response)

    @pytest.mark.parametrize("name", ["has space", "dots.not.allowed", "x" * 65, ""])
    def test_tool_names_are_function_names(self, tenant, name):
        assert "name" in _errors(tenant.client("owner").post("/api/v1/tools/", _tool(name=name)))

    def test_tool_names_are_unique_per_project(self, tenant):
        ToolFactory(project=tenant.project, name="get_order")

        assert "name" in _errors(tenant.client("owner").post("/api/v1/tools/", _tool()))

    def test_a_patch_revalidates_the_url_against_the_parameters(self, tenant):
        tool = ToolFactory(project=tenant.project)
        url = f"/api/v1/tools/{tool.pk}/"
        client = tenant.client("owner")

        dropped_placeholder = client.patch(url, {"parameters": {"type": "object", "properties": {}}})
        private = client.patch(url, {"url_template": "http://10.1.2.3/{order_id}"})
        fine = client.patch(url, {"url_template": "https://shop.example.com/o/{order_id}", "method": "POST"})

        assert "url_template" in _errors(dropped_placeholder)
        assert "url_template" in _errors(private)
        assert fine.status_code == 200 and fine.json()["method"] == "POST"

    def test_headers_are_kept_unless_replaced(self, tenant):
        tool = ToolFactory(project=tenant.project, headers={"Authorization": HEADER_SECRET})
        url = f"/api/v1/tools/{tool.pk}/"
        client = tenant.client("owner")

        kept = client.patch(url, {"description": "new"})
        replaced = client.patch(url, {"headers": {"X-Api-Key": "k2"}})

        assert kept.json()["header_names"] == ["Authorization"]
        assert replaced.json()["header_names"] == ["X-Api-Key"]
        tool.refresh_from_db()
        assert tool.headers == {"X-Api-Key": "k2"}

    def test_filters(self, tenant):
        post = ToolFactory(project=tenant.project, method="POST")
        bound = ToolBindingFactory(project=tenant.project)
        client = tenant.client("owner")

        by_method = client.get("/api/v1/tools/", {"method": "POST"}).json()["results"]
        by_agent = client.get("/api/v1/tools/", {"agent": bound.agent_id}).json()["results"]

        assert [t["id"] for t in by_method] == [str(post.pk)]
        assert [t["id"] for t in by_agent] == [str(bound.tool_id)]


# --- tool bindings ------------------------------------------------------------------------


class TestToolBindings:
    def test_a_member_binds_a_tool_with_fixed_arguments(self, tenant):
        agent = AgentFactory(project=tenant.project)
        tool = ToolFactory(project=tenant.project)
        client = tenant.client("member")

        response = client.post(
            "/api/v1/tool-bindings/", {"agent": str(agent.pk), "tool": str(tool.pk), "config": {"region": "eu"}}
        )

        assert response.status_code == 201, response.content
        assert response.json()["config"] == {"region": "eu"}
        binding = ToolBinding.objects.get()
        assert (binding.project, binding.agent, binding.tool) == (tenant.project, agent, tool)
        assert client.get(f"/api/v1/agents/{agent.pk}/").json()["tools"] == [str(tool.pk)]

    def test_a_tool_is_bound_to_an_agent_only_once(self, tenant):
        binding = ToolBindingFactory(project=tenant.project)

        response = tenant.client("owner").post(
            "/api/v1/tool-bindings/", {"agent": str(binding.agent_id), "tool": str(binding.tool_id)}
        )

        assert "tool" in _errors(response)
        assert ToolBinding.objects.count() == 1

    @pytest.mark.parametrize("foreign", ["agent", "tool"])
    def test_another_projects_agent_or_tool_is_refused_and_nothing_is_written(self, tenant, other_tenant, foreign):
        ours = {"agent": AgentFactory(project=tenant.project), "tool": ToolFactory(project=tenant.project)}
        theirs = {"agent": AgentFactory, "tool": ToolFactory}[foreign](project=other_tenant.project)
        body = {name: str(obj.pk) for name, obj in ours.items()} | {foreign: str(theirs.pk)}

        response = tenant.client("owner").post("/api/v1/tool-bindings/", body)

        assert f"another project's {foreign}" in _errors(response)[foreign][0]
        assert not ToolBinding.objects.exists()

    def test_only_the_config_of_a_binding_changes(self, tenant):
        binding = ToolBindingFactory(project=tenant.project)
        other_tool = ToolFactory(project=tenant.project)
        url = f"/api/v1/tool-bindings/{binding.pk}/"
        client = tenant.client("owner")

        changed = client.patch(url, {"config": {"limit": 5}})
        moved = client.patch(url, {"tool": str(other_tool.pk)})

        assert changed.status_code == 200 and changed.json()["config"] == {"limit": 5}
        assert changed.json()["tool"] == str(binding.tool_id)
        assert "tool" in _errors(moved)
        binding.refresh_from_db()
        assert binding.tool_id != other_tool.pk and binding.config == {"limit": 5}

    def test_the_config_must_be_an_object(self, tenant):
        binding = ToolBindingFactory(project=tenant.project)

        response = tenant.client("owner").patch(f"/api/v1/tool-bindings/{binding.pk}/", {"config": [1, 2]})

        assert "config" in _errors(response)

    @pytest.mark.parametrize("who", ["viewer", "read_key"])
    def test_viewers_cannot_bind_tools(self, tenant, who):
        agent = AgentFactory(project=tenant.project)
        tool = ToolFactory(project=tenant.project)

        response = tenant.client(who).post("/api/v1/tool-bindings/", {"agent": str(agent.pk), "tool": str(tool.pk)})

        assert response.status_code == 403
        assert not ToolBinding.objects.exists()

    def test_unbinding_and_filters(self, tenant):
        kept = ToolBindingFactory(project=tenant.project)
        dropped = ToolBindingFactory(project=tenant.project)
        client = tenant.client("owner")

        assert client.get("/api/v1/tool-bindings/", {"agent": kept.agent_id}).json()["count"] == 1
        assert client.get("/api/v1/tool-bindings/", {"tool": dropped.tool_id}).json()["count"] == 1
        assert client.delete(f"/api/v1/tool-bindings/{dropped.pk}/").status_code == 204
        assert list(ToolBinding.objects.all()) == [kept]
        assert Agent.objects.filter(pk=dropped.agent_id).exists() and Tool.objects.filter(pk=dropped.tool_id).exists()
