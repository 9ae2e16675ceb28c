"""Serializer bases for the whole API: unknown fields are an error, not silently dropped."""

from __future__ import annotations

from rest_framework import serializers


class StrictFieldsMixin:
    """Reject request fields the serializer does not declare, so a typo (``nmae``) or a
    read-only field (``project``) is reported instead of ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
        return super().to_internal_value(data)


class StrictSerializer(StrictFieldsMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    pass


class NoBodySerializer(StrictSerializer):
    """An action that takes no parameters: any field is an error."""
