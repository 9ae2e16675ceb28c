"""Writes for tenancy: projects, members and invitations, teams, API keys.

Services take keyword arguments, run in one transaction where they write more than one row,
and raise :class:`config.exceptions.DomainError` subclasses the API maps to its envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import User
from config.exceptions import Conflict, DomainError
from projects.authentication import forget_key
from projects.keys import generate_key, generate_token, key_digest, key_prefix, token_digest
from projects.models import APIKey, Membership, Project, Role


class LastOwner(Conflict):
    code = "last_owner"
    message = "A project must keep at least one owner."


class InvitationInvalid(DomainError):
    code = "invitation_invalid"
    message = "This invitation is unknown, used or expired."


# --- projects -----------------------------------------------------------------------------


def project_create(*, creator: User, name: str, description: str = "") -> Project:
    """Create a project; its creator becomes its owner."""
    with transaction.atomic():
        project = Project.objects.create(name=name, description=description, created_by=creator)
        Membership.objects.create(
            project=project,
            user=creator,
            email=creator.email,
            role=Role.OWNER,
            status=Membership.Status.ACTIVE,
            joined_at=timezone.now(),
        )
    return project


def project_update(*, project: Project, **fields) -> Project:
    for name, value in fields.items():
        setattr(project, name, value)
    project.save(update_fields=[*fields, "updated_at"])
    return project


# --- members ------------------------------------------------------------------------------


def _owners(project: Project):
    return Membership.objects.filter(project=project, role=Role.OWNER, status=Membership.Status.ACTIVE)


def member_invite(*, project: Project, email: str, role: str, invited_by: User | None, actor_role: str) -> Membership:
    """Add ``email`` to the project. An existing user joins at once; a new address gets a pending
    membership and an invitation e-mail whose token ``/auth/register`` accepts."""
    if role == Role.OWNER and actor_role != Role.OWNER:
        raise DomainError("Only an owner can add an owner.", code="owner_required")
    email = User.objects.normalize_email(email)
    user = User.objects.filter(email=email).first()
    token = None
    membership = Membership(project=project, email=email, role=role, invited_by=invited_by)
    if user is not None:
        membership.user = user
        membership.status = Membership.Status.ACTIVE
        membership.joined_at = timezone.now()
    else:
        token = generate_token()
        membership.status = Membership.Status.INVITED
        membership.invitation_digest = token_digest(token)
        membership.invitation_expires_at = timezone.now() + timedelta(days=settings.INVITATION_DAYS)
    try:
        with transaction.atomic():
            membership.save()
    except IntegrityError:
        raise Conflict(
            "This address is already a member of, or invited to, the project.", code="already_member"
        ) from None
    if token is not None:
        transaction.on_commit(lambda: _send_invitation(membership=membership, token=token))
    return membership


def _send_invitation(*, membership: Membership, token: str) -> None:
    context = {
        "project": membership.project,
        "inviter": membership.invited_by,
        "role": membership.role,
        "url": f"{settings.FRONTEND_URL.rstrip('/')}/register?invitation={token}",
        "token": token,
        "expires_at": membership.invitation_expires_at,
    }
    send_mail(
        subject=f"You are invited to {membership.project.name} on AgentDesk",
        message=render_to_string("emails/invitation.txt", context),
        from_email=None,
        recipient_list=[membership.email],
    )


def invitation_get_pending(*, token: str, email: str) -> Membership:
    """The pending membership an invitation token names, for ``email``; else ``InvitationInvalid``."""
    membership = (
        Membership.objects.select_related("project")
        .filter(invitation_digest=token_digest(token), status=Membership.Status.INVITED)
        .first()
    )
    if (
        membership is None
        or membership.invitation_expires_at is None
        or membership.invitation_expires_at <= timezone.now()
    ):
        raise InvitationInvalid(details={"invitation_token": ["Unknown, used or expired invitation."]})
    if membership.email.lower() != email.lower():
        raise InvitationInvalid(
            "This invitation was sent to another e-mail address.",
            details={"email": ["Register with the address the invitation was sent to."]},
        )
    return membership


def invitation_accept(*, membership: Membership, user: User) -> Membership:
    membership.user = user
    membership.status = Membership.Status.ACTIVE
    membership.joined_at = timezone.now()
    membership.invitation_digest = ""
    membership.invitation_expires_at = None
    membership.save(
        update_fields=["user", "status", "joined_at", "invitation_digest", "invitation_expires_at", "updated_at"]
    )
    return membership


def member_change_role(*, membership: Membership, role: str, actor_role: str) -> Membership:
    """Change a member's role. Only owners grant or take away ownership; the last owner stays."""
    if Role.OWNER in (role, membership.role) and actor_role != Role.OWNER:
        raise DomainError("Only an owner can grant or remove the owner role.", code="owner_required")
    with transaction.atomic():
        # Lock the project's owners so two concurrent demotions cannot both pass the check.
        owners = list(_owners(membership.project).select_for_update())
        if membership.role == Role.OWNER and role != Role.OWNER and len(owners) <= 1:
            raise LastOwner()
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
    return membership


def member_remove(*, membership: Membership, actor_role: str) -> None:
    """Remove a member or withdraw an invitation. The last owner cannot leave."""
    if membership.role == Role.OWNER and actor_role != Role.OWNER:
        raise DomainError("Only an owner can remove an owner.", code="owner_required")
    with transaction.atomic():
        owners = list(_owners(membership.project).select_for_update())
        if membership.role == Role.OWNER and membership.status == Membership.Status.ACTIVE and len(owners) <= 1:
            raise LastOwner("The last owner cannot leave the project; make someone else owner first.")
        membership.delete()


# --- API keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedKey:
    api_key: APIKey
    raw: str  # shown once, never stored


def apikey_create(
    *,
    project: Project,
    name: str,
    scopes: list[str],
    environment: str = APIKey.Environment.LIVE,
    expires_at: datetime | None = None,
    created_by: User | None = None,
    raw: str | None = None,
) -> CreatedKey:
    """Mint a key. Only its prefix and digest are stored; the caller shows ``raw`` once.

    ``raw`` is for ``seed_dev`` (the ``dev`` key) and nothing else.
    """
    raw = raw or generate_key(environment)
    api_key = APIKey.objects.create(
        project=project,
        name=name,
        environment=environment,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=created_by,
        prefix=key_prefix(raw),
        digest=key_digest(raw),
    )
    return CreatedKey(api_key=api_key, raw=raw)


def apikey_revoke(*, api_key: APIKey) -> APIKey:
    """Revoke at once in this process; other processes drop it within API_KEY_CACHE_SECONDS."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
    forget_key(api_key.digest)
    return api_key


def apikey_delete(*, api_key: APIKey) -> None:
    forget_key(api_key.digest)
    api_key.delete()
