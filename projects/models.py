"""Tenancy: the Project (tenant), who belongs to it (Membership, Team) and the keys programs use.

Every tenant-owned model in every app inherits :class:`ProjectScopedModel`; API views reach
those rows only through :class:`projects.tenancy.ProjectScopedViewSet`.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# Higher includes lower: an admin may do all a member may, and so on.
ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_at_least(role: str | None, required: str) -> bool:
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(required)]


class TimestampedModel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Project(TimestampedModel):
    """A tenant. Everything a customer owns hangs off one project."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class ProjectScopedModel(TimestampedModel):
    """Base of every tenant-owned model: a UUID id, timestamps and the owning ``project``.

    The project is set by the server (the viewset base, or a service given ``project=``), never
    taken from a client.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", editable=False)

    class Meta:
        abstract = True


class Membership(ProjectScopedModel):
    """A user's place in a project, or a pending invitation (``user`` empty until accepted)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INVITED = "invited", "Invited"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships"
    )
    email = models.EmailField(max_length=254, help_text="The member's address; for invitations, where it was sent.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Invitation tokens are stored as digests only, like API keys.
    invitation_digest = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    invitation_expires_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["email", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user"], condition=Q(user__isnull=False), name="membership_unique_user"
            ),
            models.UniqueConstraint("project", Lower("email"), name="membership_unique_email"),
            models.CheckConstraint(
                condition=Q(status="invited") | Q(user__isnull=False), name="membership_active_has_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.role}) in {self.project_id}"


class Team(ProjectScopedModel):
    """A named group of members (and, later, agents) within a project."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=2000)
    members = models.ManyToManyField(Membership, blank=True, related_name="teams")

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint("project", Lower("name"), name="team_unique_name")]

    def __str__(self) -> str:
        return self.name


class APIKey(ProjectScopedModel):
    """A project's credential for programs. Only ``prefix`` (for people) and ``digest``
    (HMAC-SHA-256 of the whole key under ``API_KEY_PEPPER``, for lookup) are stored."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        ADMIN = "admin", "Admin"

    class Environment(models.TextChoices):
        LIVE = "live", "Live"
        TEST = "test", "Test"

    name = models.CharField(max_length=120)
    environment = models.CharField(max_length=8, choices=Environment.choices, default=Environment.LIVE)
    prefix = models.CharField(max_length=24, editable=False, help_text="Shown to people; not a secret.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = ArrayField(models.CharField(max_length=8, choices=Scope.choices), default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def role(self) -> str:
        """The membership role a key acts with: its widest scope. Keys never act as owners."""
        if self.Scope.ADMIN in self.scopes:
            return Role.ADMIN
        if self.Scope.WRITE in self.scopes:
            return Role.MEMBER
        return Role.VIEWER
