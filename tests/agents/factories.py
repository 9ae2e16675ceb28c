"""Factories for the agents app. Related rows default to the same project as the row itself."""

import factory

from agents.models import Agent, Conversation, Message, Provider, Run, RunEvent, Tool, ToolBinding
from tests.projects.factories import ProjectFactory

_SAME_PROJECT = factory.SelfAttribute("..project")


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Provider {n}")
    kind = Provider.Kind.OPENAI
    base_url = "https://llm.example.com/v1"
    api_key = factory.Sequence(lambda n: f"sk-test-{n:06d}-abcdefghijklmnop")
    default_chat_model = "gpt-4o-mini"
    default_embedding_model = "text-embedding-3-small"


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Agent {n}")
    instructions = "You are a helpful support agent."


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tool

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"tool_{n}")
    description = "Look up an order."
    method = Tool.Method.GET
    url_template = "https://api.example.com/orders/{order_id}"
    headers = factory.LazyFunction(lambda: {"Authorization": "Bearer tool-secret-token"})
    parameters = factory.LazyFunction(
        lambda: {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        }
    )


class ToolBindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ToolBinding

    project = factory.SubFactory(ProjectFactory)
    agent = factory.SubFactory(AgentFactory, project=_SAME_PROJECT)
    tool = factory.SubFactory(ToolFactory, project=_SAME_PROJECT)
    config = factory.LazyFunction(dict)


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    project = factory.SubFactory(ProjectFactory)
    agent = factory.SubFactory(AgentFactory, project=_SAME_PROJECT)
    title = factory.Sequence(lambda n: f"Conversation {n}")


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    project = factory.SubFactory(ProjectFactory)
    conversation = factory.SubFactory(ConversationFactory, project=_SAME_PROJECT)
    role = Message.Role.USER
    content = factory.Sequence(lambda n: f"Message {n}")


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    project = factory.SubFactory(ProjectFactory)
    agent = factory.SubFactory(AgentFactory, project=_SAME_PROJECT)
    input = "Where is my order?"


class RunEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RunEvent

    run = factory.SubFactory(RunFactory)
    seq = factory.Sequence(lambda n: n + 1)
    type = "progress"
    data = factory.LazyFunction(dict)
