import factory

from tests.projects.factories import ProjectFactory
from usage.models import UsageRecord


class UsageRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageRecord

    project = factory.SubFactory(ProjectFactory)
    provider_kind = "openai"
    model = "gpt-4o-mini"
    operation = UsageRecord.Operation.CHAT
    prompt_tokens = 120
    completion_tokens = 30
    total_tokens = factory.LazyAttribute(lambda r: r.prompt_tokens + r.completion_tokens)
    latency_ms = 250
    status = UsageRecord.Status.SUCCEEDED
