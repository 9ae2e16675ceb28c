"""Filters of the agents API. Relations filter by id (``?provider=<uuid>``): the queryset is
already the project's, so another project's id simply matches nothing."""

import django_filters

from agents.models import Agent, Provider, Tool, ToolBinding


class ProviderFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Provider.Kind.choices)

    class Meta:
        model = Provider
        fields = ["kind", "is_default"]


class AgentFilter(django_filters.FilterSet):
    provider = django_filters.UUIDFilter(field_name="provider_id")
    team = django_filters.UUIDFilter(field_name="team_id")
    has_provider = django_filters.BooleanFilter(field_name="provider", lookup_expr="isnull", exclude=True)
    tool = django_filters.UUIDFilter(field_name="bindings__tool_id", distinct=True, label="Bound to this tool")

    class Meta:
        model = Agent
        fields = ["provider", "team", "has_provider", "is_active", "tool"]


class ToolFilter(django_filters.FilterSet):
    method = django_filters.ChoiceFilter(choices=Tool.Method.choices)
    agent = django_filters.UUIDFilter(field_name="bindings__agent_id", distinct=True, label="Bound to this agent")

    class Meta:
        model = Tool
        fields = ["method", "agent"]


class ToolBindingFilter(django_filters.FilterSet):
    agent = django_filters.UUIDFilter(field_name="agent_id")
    tool = django_filters.UUIDFilter(field_name="tool_id")

    class Meta:
        model = ToolBinding
        fields = ["agent", "tool"]
