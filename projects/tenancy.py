"""The tenancy base classes. Every project-owned endpoint is built from these, so isolation is a
property of the code, not a check each view must remember.

* :func:`project_context_resolve` decides the request's project and the caller's role in it:
  an API key implies its project; a staff user names one with ``X-Project-ID`` and must be an
  active member of it.
* :class:`ProjectScopedViewSet` filters every queryset by that project and sets it on create.
  Subclasses narrow the queryset through :meth:`~ProjectScopedViewSet.scope_queryset`; overriding
  ``get_queryset`` is refused at class creation.
* :class:`ProjectScopedPrimaryKeyRelatedField` accepts only rows of the request's project.

Another project's row is always 404 (never 403), so ids reveal nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.views import View
from rest_framework import permissions, serializers, viewsets
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.models import User
from projects.authentication import APIKeyPrincipal, aapikey_authenticate, raw_key_from
from projects.models import APIKey, Membership, Project, Role, role_at_least

PROJECT_HEADER = "X-Project-ID"


class ProjectRequired(APIException):
    status_code = 400
    default_code = "project_required"
    default_detail = f"Choose the project with the {PROJECT_HEADER} header (a project id)."


@dataclass(frozen=True)
class ProjectContext:
    project: Project
    role: str
    api_key: APIKey | None = None
    membership: Membership | None = None


def _project_not_found() -> NotFound:
    return NotFound("Project not found.", code="project_not_found")


def _key_context(api_key: APIKey, header: str | None) -> ProjectContext:
    if header and header != str(api_key.project_id):
        raise _project_not_found()
    return ProjectContext(project=api_key.project, role=api_key.role, api_key=api_key)


def _membership_query(header: str | None, user) -> QuerySet:
    """The active membership of ``user`` in the project the header names (a query to run)."""
    if not header:
        raise ProjectRequired()
    try:
        project_id = uuid.UUID(header)
    except ValueError:
        raise _project_not_found() from None
    return Membership.objects.select_related("project").filter(
        project_id=project_id, user=user, status=Membership.Status.ACTIVE
    )


def _member_context(membership: Membership | None) -> ProjectContext:
    if membership is None:
        raise _project_not_found()
    return ProjectContext(project=membership.project, role=membership.role, membership=membership)


def project_context_resolve(request) -> ProjectContext:
    """The project a request acts in and the caller's role there. Raises 400/404."""
    header = request.headers.get(PROJECT_HEADER)
    if isinstance(request.auth, APIKey):
        return _key_context(request.auth, header)
    return _member_context(_membership_query(header, request.user).first())


def attach_project_context(request, context: ProjectContext) -> None:
    for target in (request, request._request):
        target.project = context.project
        target.project_role = context.role
        target.project_context = context
    structlog.contextvars.bind_contextvars(project_id=str(context.project.pk))


class ProjectRolePermission(permissions.BasePermission):
    """The caller's role (a key's scopes map to roles) must reach the view's required role."""

    def has_permission(self, request, view) -> bool:
        required = view.required_role(request)
        context: ProjectContext = request.project_context
        if role_at_least(context.role, required):
            return True
        if context.api_key is not None:
            raise PermissionDenied(
                f"This API key lacks the scope for this action (needs {_SCOPE_FOR_ROLE[required]}).",
                code="insufficient_scope",
            )
        raise PermissionDenied(f"Your role in this project is not enough (needs {required}).", code="insufficient_role")


_SCOPE_FOR_ROLE = {Role.VIEWER: "read", Role.MEMBER: "write", Role.ADMIN: "admin", Role.OWNER: "a person (owner)"}


class ProjectScopedViewSet(viewsets.ModelViewSet):
    """Base of every tenant-owned API resource.

    Set ``queryset`` to the model's full queryset; it is only ever used filtered by the
    request's project. Roles: ``read_role`` for safe methods, ``write_role`` otherwise, and
    ``action_roles`` for named actions.
    """

    queryset: QuerySet
    read_role: str = Role.VIEWER
    write_role: str = Role.MEMBER
    action_roles: dict[str, str] = {}
    permission_classes = [permissions.IsAuthenticated, ProjectRolePermission]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; narrow it with scope_queryset() so the "
                "project filter cannot be lost."
            )

    def perform_authentication(self, request) -> None:
        super().perform_authentication(request)
        if request.user is not None and request.user.is_authenticated:
            attach_project_context(request, project_context_resolve(request))

    def required_role(self, request) -> str:
        if self.action in self.action_roles:
            return self.action_roles[self.action]
        return self.read_role if request.method in permissions.SAFE_METHODS else self.write_role

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation, no request
            return self.queryset.none()
        project = getattr(self.request, "project", None)
        if project is None:  # fail closed
            raise PermissionDenied("No project selected.", code="project_required")
        return self.scope_queryset(self.queryset.filter(project=project))

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        """Hook: narrow or annotate the already project-filtered queryset."""
        return queryset

    def perform_create(self, serializer) -> None:
        serializer.save(project=self.request.project)


class ProjectScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A relation that accepts only rows of the request's project; others read as 'does not exist'."""

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        request = self.context.get("request")
        project = getattr(request, "project", None)
        if project is None:
            return queryset.none()
        return queryset.filter(project=project)


# --- async views ---------------------------------------------------------------------------
#
# The model-call endpoints (chat, streams, the OpenAI-compatible API) are async Django views, so
# they never block the event loop. They get the same rules from here: the same credentials, the
# same project resolution, the same roles, and the same error envelope.


async def aauthenticate(request, *, allow_users: bool = True):
    """``(user_or_principal, api_key_or_None)`` for an async request; raises 401 APIExceptions."""
    raw_key = raw_key_from(request)
    if raw_key is not None:
        key = await aapikey_authenticate(raw_key)
        return APIKeyPrincipal(key), key
    if not allow_users:
        raise NotAuthenticated("Use a project API key: Authorization: Bearer ak_…", code="not_authenticated")
    jwt = JWTAuthentication()
    header = jwt.get_header(request)
    raw = jwt.get_raw_token(header) if header else None
    if raw is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    try:
        token = await sync_to_async(jwt.get_validated_token, thread_sensitive=False)(raw)
    except (InvalidToken, TokenError) as exc:
        raise AuthenticationFailed("Given token not valid for any token type", code="token_not_valid") from exc
    user = await User.objects.filter(pk=token[jwt_settings.USER_ID_CLAIM], is_active=True).afirst()
    if user is None:
        raise AuthenticationFailed("User not found or inactive.", code="user_not_found")
    return user, None


async def aproject_context_resolve(request, user, api_key) -> ProjectContext:
    """:func:`project_context_resolve` for async views."""
    header = request.headers.get(PROJECT_HEADER)
    if api_key is not None:
        return _key_context(api_key, header)
    return _member_context(await _membership_query(header, user).afirst())


class ProjectScopedAsyncView(View):
    """Base of async project endpoints: authenticate, resolve the project, check the role, then
    call the handler; any error leaves in the envelope (:meth:`render_error` may change its shape).

    Handlers find ``request.project``, ``request.project_role``, ``request.project_context`` and
    ``request.caller`` (the user, or the API-key principal). Look rows up with
    :meth:`scoped` so another project's row is a 404.
    """

    http_method_names = ["post"]
    allow_users = True
    required_role: str = Role.MEMBER
    # A DRF APIView that documents this endpoint for the OpenAPI schema (never routed to).
    schema_view: type | None = None

    @classmethod
    def as_view(cls, **initkwargs):
        view = super().as_view(**initkwargs)
        view.csrf_exempt = True  # token-authenticated API, no cookies
        if cls.schema_view is not None:  # drf-spectacular documents callbacks that carry a DRF class
            view.cls = cls.schema_view
            view.initkwargs = {}
        return view

    async def dispatch(self, request, *args, **kwargs):
        if request.method.lower() not in self.http_method_names:
            return self.render_error(MethodNotAllowed(request.method), request)
        try:
            user, api_key = await aauthenticate(request, allow_users=self.allow_users)
            context = await aproject_context_resolve(request, user, api_key)
            request.caller = user
            request.project = context.project
            request.project_role = context.role
            request.project_context = context
            structlog.contextvars.bind_contextvars(project_id=str(context.project.pk))
            if not role_at_least(context.role, self.required_role):
                code = "insufficient_scope" if api_key is not None else "insufficient_role"
                raise PermissionDenied(f"This needs the {self.required_role} role (or a write key).", code=code)
            handler = getattr(self, request.method.lower())
            return await handler(request, *args, **kwargs)
        except Exception as exc:
            response = self.render_error(exc, request)
            if response is None:
                raise
            return response

    def render_error(self, exc: Exception, request):
        from config.exceptions import error_response

        return error_response(exc, request)

    @staticmethod
    async def scoped(queryset: QuerySet, request, **lookup):
        """The row of the request's project matching ``lookup``, else 404."""
        obj = await queryset.filter(project=request.project, **lookup).afirst()
        if obj is None:
            raise NotFound()
        return obj
