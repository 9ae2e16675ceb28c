import factory

from knowledge.models import Collection, Document
from tests.projects.factories import ProjectFactory


class CollectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Collection

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Collection {n}")
    embedding_model = "all-minilm-l6-v2"


class DocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Document

    collection = factory.SubFactory(CollectionFactory)
    project = factory.SelfAttribute("collection.project")
    title = factory.Sequence(lambda n: f"Document {n}")
    source = Document.Source.TEXT
    mime_type = "text/plain"
    checksum = factory.Sequence(lambda n: f"{n:064x}")
    status = Document.Status.FAILED  # so that retry, too, would act if isolation failed
