from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from config.serializers import StrictModelSerializer, StrictSerializer
from projects.models import APIKey, Membership, Project, Role, Team
from projects.tenancy import ProjectScopedPrimaryKeyRelatedField


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Create a project", value={"name": "Acme support", "description": "Help desk"}, request_only=True
        )
    ]
)
class ProjectSerializer(StrictModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role in this project.")

    class Meta:
        model = Project
        fields = ["id", "name", "description", "role", "created_at", "updated_at"]
        read_only_fields = ["id", "role", "created_at", "updated_at"]

    @extend_schema_field(serializers.ChoiceField(choices=Role.choices))
    def get_role(self, project: Project) -> str | None:
        return getattr(project, "caller_role", None)


class MemberUserSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    email = serializers.EmailField(read_only=True)
    full_name = serializers.CharField(read_only=True)


class MembershipSerializer(StrictModelSerializer):
    user = MemberUserSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Membership
        fields = [
            "id",
            "email",
            "role",
            "status",
            "user",
            "invitation_expires_at",
            "joined_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [f for f in fields if f != "role"]


@extend_schema_serializer(
    examples=[OpenApiExample("Invite", value={"email": "grace@example.com", "role": "member"}, request_only=True)]
)
class MemberInviteSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MemberUpdateSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class TeamSerializer(StrictModelSerializer):
    members = ProjectScopedPrimaryKeyRelatedField(
        queryset=Membership.objects.all(), many=True, required=False, help_text="Membership ids."
    )

    class Meta:
        model = Team
        fields = ["id", "name", "description", "members", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_name(self, value: str) -> str:
        request = self.context["request"]
        clash = Team.objects.filter(project=request.project, name__iexact=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError("A team with this name already exists in the project.")
        return value


class APIKeySerializer(StrictModelSerializer):
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = APIKey
        fields = [
            "id",
            "name",
            "prefix",
            "environment",
            "scopes",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [f for f in fields if f not in ("name", "scopes", "expires_at")]

    def get_is_active(self, key: APIKey) -> bool:
        return not key.is_revoked and not key.is_expired

    def validate_scopes(self, value: list[str]) -> list[str]:
        if not value:
            raise serializers.ValidationError("Give at least one scope: read, write or admin.")
        return sorted(set(value))

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Create a key",
            value={"name": "Widget backend", "scopes": ["read", "write"], "environment": "live"},
            request_only=True,
        )
    ]
)
class APIKeyCreateSerializer(APIKeySerializer):
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=APIKey.Scope.choices), max_length=3, default=["read", "write"]
    )
    environment = serializers.ChoiceField(choices=APIKey.Environment.choices, default=APIKey.Environment.LIVE)

    class Meta(APIKeySerializer.Meta):
        read_only_fields = [
            f for f in APIKeySerializer.Meta.fields if f not in ("name", "scopes", "expires_at", "environment")
        ]


class APIKeyCreatedSerializer(APIKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full key. Shown only in this response; store it now.")

    class Meta(APIKeySerializer.Meta):
        fields = [*APIKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class APIKeyUpdateSerializer(APIKeySerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=APIKey.Scope.choices), max_length=3)
