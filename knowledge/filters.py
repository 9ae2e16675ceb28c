"""Filters of the knowledge API. Relations filter by id: the queryset is already the
project's, so another project's id simply matches nothing."""

import django_filters

from knowledge.models import Collection, Document, SearchMode


class CollectionFilter(django_filters.FilterSet):
    embedding_model = django_filters.CharFilter()
    default_mode = django_filters.ChoiceFilter(choices=SearchMode.choices)

    class Meta:
        model = Collection
        fields = ["embedding_model", "default_mode"]


class DocumentFilter(django_filters.FilterSet):
    collection = django_filters.UUIDFilter(field_name="collection_id")
    status = django_filters.MultipleChoiceFilter(choices=Document.Status.choices, help_text="Repeatable.")
    source = django_filters.ChoiceFilter(choices=Document.Source.choices)
    mime_type = django_filters.CharFilter()

    class Meta:
        model = Document
        fields = ["collection", "status", "source", "mime_type"]
