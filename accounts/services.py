"""Writes for accounts: registration, profile and password changes, token revocation."""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.db import transaction
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from config.exceptions import Conflict, DomainError


def user_register(*, email: str, password: str, full_name: str = "", invitation_token: str | None = None) -> User:
    """Create a user. With ``invitation_token`` the pending membership it names is accepted in
    the same transaction: either both happen or neither does."""
    from projects.services import invitation_accept, invitation_get_pending

    email = User.objects.normalize_email(email)
    invitation = invitation_get_pending(token=invitation_token, email=email) if invitation_token else None
    candidate = User(email=email, full_name=full_name)
    _validate_password(password, candidate)
    with transaction.atomic():
        if User.objects.filter(email=email).exists():
            raise Conflict("A user with this e-mail address already exists.", code="email_taken")
        user = User.objects.create_user(email=email, password=password, full_name=full_name)
        if invitation is not None:
            invitation_accept(membership=invitation, user=user)
    return user


def user_update(*, user: User, full_name: str | None = None) -> User:
    if full_name is not None:
        user.full_name = full_name
        user.save(update_fields=["full_name"])
    return user


def user_change_password(*, user: User, old_password: str, new_password: str) -> None:
    """Change the password and log out every other session: all refresh tokens are revoked."""
    if not user.check_password(old_password):
        raise DomainError(
            "The current password is wrong.",
            code="validation_error",
            details={"old_password": ["The current password is wrong."]},
        )
    _validate_password(new_password, user, field="new_password")
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        user_revoke_refresh_tokens(user=user)


def user_revoke_refresh_tokens(*, user: User) -> int:
    outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
    return len(BlacklistedToken.objects.bulk_create([BlacklistedToken(token=t) for t in outstanding]))


def _validate_password(password: str, user: User, field: str = "password") -> None:
    from django.core.exceptions import ValidationError

    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise DomainError(
            "The password is not strong enough.", code="validation_error", details={field: list(exc.messages)}
        ) from None
