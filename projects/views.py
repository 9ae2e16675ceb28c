"""Tenancy endpoints: projects, members (and invitations), teams, API keys."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery, Value
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from projects import services
from projects.filters import APIKeyFilter, MembershipFilter, TeamFilter
from projects.models import APIKey, Membership, Project, Role, Team, role_at_least
from projects.serializers import (
    APIKeyCreatedSerializer,
    APIKeyCreateSerializer,
    APIKeySerializer,
    APIKeyUpdateSerializer,
    MemberInviteSerializer,
    MembershipSerializer,
    MemberUpdateSerializer,
    ProjectSerializer,
    TeamSerializer,
)
from projects.tenancy import ProjectScopedViewSet

_NO_PUT = ["get", "post", "patch", "delete", "head", "options"]


@extend_schema_view(
    list=extend_schema(summary="Projects you belong to (an API key sees its own)"),
    create=extend_schema(summary="Create a project; you become its owner"),
    destroy=extend_schema(summary="Delete a project and everything in it (owners only)"),
)
class ProjectViewSet(viewsets.ModelViewSet):
    """The tenant itself. Not chosen by ``X-Project-ID``: a user sees the projects they belong
    to, an API key its own project; any other project is 404."""

    serializer_class = ProjectSerializer
    permission_classes = [permissions.IsAuthenticated]
    http_method_names = _NO_PUT
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Project.objects.none()
        if isinstance(self.request.auth, APIKey):
            key = self.request.auth
            return Project.objects.filter(pk=key.project_id).annotate(caller_role=Value(key.role))
        role = Membership.objects.filter(
            project=OuterRef("pk"), user=self.request.user, status=Membership.Status.ACTIVE
        ).values("role")[:1]
        return Project.objects.annotate(caller_role=Subquery(role)).filter(caller_role__isnull=False)

    def check_object_permissions(self, request, obj: Project) -> None:
        super().check_object_permissions(request, obj)
        required = {"destroy": Role.OWNER, "update": Role.ADMIN, "partial_update": Role.ADMIN}.get(self.action)
        if required and not role_at_least(obj.caller_role, required):
            code = "insufficient_scope" if isinstance(request.auth, APIKey) else "insufficient_role"
            raise PermissionDenied(f"This needs the {required} role in the project.", code=code)

    def perform_create(self, serializer) -> None:
        if isinstance(self.request.auth, APIKey):
            raise PermissionDenied("API keys cannot create projects; log in as a user.", code="user_required")
        project = services.project_create(creator=self.request.user, **serializer.validated_data)
        project.caller_role = Role.OWNER
        serializer.instance = project

    def perform_update(self, serializer) -> None:
        role = serializer.instance.caller_role
        serializer.instance = services.project_update(project=serializer.instance, **serializer.validated_data)
        serializer.instance.caller_role = role


@extend_schema_view(
    create=extend_schema(
        summary="Invite by e-mail",
        description="An existing user joins at once (status `active`); a new address gets an "
        "invitation e-mail (status `invited`) whose token `POST /api/v1/auth/register` accepts.",
        request=MemberInviteSerializer,
        responses={201: MembershipSerializer},
    ),
    partial_update=extend_schema(summary="Change a member's role", request=MemberUpdateSerializer),
    destroy=extend_schema(summary="Remove a member, withdraw an invitation, or leave the project"),
)
class MemberViewSet(ProjectScopedViewSet):
    queryset = Membership.objects.select_related("user")
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilter
    search_fields = ["email", "user__full_name"]
    ordering_fields = ["email", "role", "created_at"]
    http_method_names = _NO_PUT
    write_role = Role.ADMIN

    def required_role(self, request) -> str:
        own = request.project_context.membership
        if self.action == "destroy" and own is not None and str(own.pk) == str(self.kwargs.get("pk")):
            return Role.VIEWER  # anyone may leave
        return super().required_role(request)

    def create(self, request, *args, **kwargs):
        serializer = MemberInviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.member_invite(
            project=request.project,
            invited_by=request.user if request.user.pk else None,
            actor_role=request.project_role,
            **serializer.validated_data,
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        membership = self.get_object()
        serializer = MemberUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.member_change_role(
            membership=membership, role=serializer.validated_data["role"], actor_role=request.project_role
        )
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        services.member_remove(membership=instance, actor_role=self.request.project_role)


class TeamViewSet(ProjectScopedViewSet):
    queryset = Team.objects.prefetch_related("members")
    serializer_class = TeamSerializer
    filterset_class = TeamFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    http_method_names = _NO_PUT


@extend_schema_view(
    create=extend_schema(
        summary="Create an API key",
        description="The response's `key` field holds the full key. It is shown only once: we "
        "store a digest, not the key.",
        request=APIKeyCreateSerializer,
        responses={201: APIKeyCreatedSerializer},
    ),
    partial_update=extend_schema(request=APIKeyUpdateSerializer),
    destroy=extend_schema(summary="Delete a key (revoking keeps it listed instead)"),
)
class APIKeyViewSet(ProjectScopedViewSet):
    queryset = APIKey.objects.all()
    serializer_class = APIKeySerializer
    filterset_class = APIKeyFilter
    search_fields = ["name", "prefix"]
    ordering_fields = ["name", "created_at", "last_used_at", "expires_at"]
    http_method_names = _NO_PUT
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def get_serializer_class(self):
        return {"create": APIKeyCreateSerializer, "partial_update": APIKeyUpdateSerializer}.get(
            self.action, APIKeySerializer
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.apikey_create(
            project=request.project,
            created_by=request.user if request.user.pk else None,
            **serializer.validated_data,
        )
        body = APIKeyCreatedSerializer(created.api_key).data
        body["key"] = created.raw
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: APIKey) -> None:
        services.apikey_delete(api_key=instance)

    @extend_schema(
        request=None, responses={200: APIKeySerializer}, summary="Revoke a key (takes effect within seconds)"
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = services.apikey_revoke(api_key=self.get_object())
        return Response(APIKeySerializer(api_key).data)
