"""Staff authentication: register, login, refresh rotation, logout, profile, password change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import User
from projects.models import Membership
from tests.accounts.factories import PASSWORD, UserFactory
from tests.conftest import user_client
from tests.projects.factories import InvitationFactory

pytestmark = pytest.mark.django_db


def login(client, email, password=PASSWORD):
    return client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json")


def test_register_creates_a_user_and_returns_tokens(api_client):
    response = api_client.post(
        "/api/v1/auth/register",
        {"email": "Ada@Example.com", "password": "correct horse battery", "full_name": "Ada"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    assert "password" not in body["user"]
    assert User.objects.get(email="ada@example.com").check_password("correct horse battery")
    me = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert me.json()["email"] == "ada@example.com"


def test_register_rejects_weak_passwords_with_validator_messages(api_client):
    response = api_client.post("/api/v1/auth/register", {"email": "a@example.com", "password": "12345678"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["password"]
    assert not User.objects.exists()


def test_register_refuses_a_taken_email_in_any_case(api_client):
    UserFactory(email="taken@example.com")

    response = api_client.post("/api/v1/auth/register", {"email": "TAKEN@example.com", "password": "a fine passphrase"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"
    assert User.objects.count() == 1


def test_login_returns_a_token_pair_and_wrong_password_is_401(api_client):
    user = UserFactory()

    ok = login(api_client, user.email.upper())
    wrong = login(api_client, user.email, "not the password")

    assert ok.status_code == 200
    assert AccessToken(ok.json()["access"])["user_id"] == str(user.pk)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_login_of_an_inactive_user_is_refused(api_client):
    user = UserFactory(is_active=False)

    assert login(api_client, user.email).status_code == 401


def test_refresh_rotates_and_blacklists_the_old_refresh_token(api_client):
    user = UserFactory()
    refresh = login(api_client, user.email).json()["refresh"]

    first = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")
    again = api_client.post("/api/v1/auth/refresh", {"refresh": refresh}, format="json")

    assert first.status_code == 200
    assert first.json()["refresh"] != refresh
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "token_not_valid"


def test_logout_blacklists_the_refresh_token(api_client):
    user = UserFactory()
    tokens = login(api_client, user.email).json()
    client = user_client(user)

    out = client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    refresh = api_client.post("/api/v1/auth/refresh", {"refresh": tokens["refresh"]}, format="json")

    assert out.status_code == 204
    assert refresh.status_code == 401
    assert refresh.json()["error"]["code"] == "token_not_valid"


def test_logout_refuses_another_users_refresh_token():
    alice, bob = UserFactory(), UserFactory()

    response = user_client(alice).post("/api/v1/auth/logout", {"refresh": str(RefreshToken.for_user(bob))})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("not-a-jwt", "token_not_valid"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.wrongsignature", "token_not_valid"),
    ],
)
def test_malformed_jwts_are_401(api_client, token, code):
    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_an_expired_access_token_is_401(api_client):
    token = AccessToken.for_user(UserFactory())
    token.set_exp(lifetime=-timedelta(seconds=1))

    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_a_deleted_users_token_is_401(api_client):
    user = UserFactory()
    token = str(AccessToken.for_user(user))
    user.delete()

    response = api_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401


def test_me_can_be_updated_but_not_the_email():
    user = UserFactory(full_name="Old")
    client = user_client(user)

    ok = client.patch("/api/v1/auth/me", {"full_name": "New"}, format="json")
    email = client.patch("/api/v1/auth/me", {"email": "x@example.com"}, format="json")

    assert ok.status_code == 200 and ok.json()["full_name"] == "New"
    assert email.status_code == 400
    user.refresh_from_db()
    assert user.email != "x@example.com"


def test_password_change_checks_the_old_password_and_revokes_refresh_tokens(api_client):
    user = UserFactory()
    refresh = login(api_client, user.email).json()["refresh"]
    client = user_client(user)

    wrong = client.post("/api/v1/auth/password", {"old_password": "nope", "new_password": "another good one 7"})
    weak = client.post("/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "123"})
    ok = client.post("/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "another good one 7"})

    assert wrong.status_code == 400 and "old_password" in wrong.json()["error"]["details"]
    assert weak.status_code == 400 and "new_password" in weak.json()["error"]["details"]
    assert ok.status_code == 204
    user.refresh_from_db()
    assert user.check_password("another good one 7")
    assert api_client.post("/api/v1/auth/refresh", {"refresh": refresh}).status_code == 401


def test_account_endpoints_do_not_accept_api_keys(tenant):
    response = tenant.client("admin_key").get("/api/v1/auth/me")

    assert response.status_code == 401


class TestInvitations:
    def test_registering_with_an_invitation_token_joins_the_project(
        self, api_client, tenant, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            invite = tenant.client("owner").post("/api/v1/members/", {"email": "new@example.com", "role": "viewer"})
        assert invite.status_code == 201 and invite.json()["status"] == "invited"
        assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]
        token = mail.outbox[0].body.split("invitation=")[1].split()[0]

        response = api_client.post(
            "/api/v1/auth/register",
            {"email": "new@example.com", "password": "a fine passphrase", "invitation_token": token},
        )

        assert response.status_code == 201, response.content
        membership = Membership.objects.get(project=tenant.project, email="new@example.com")
        assert membership.status == "active" and membership.user.email == "new@example.com"
        assert membership.role == "viewer"
        assert membership.invitation_digest == ""
        # the token is spent
        again = api_client.post(
            "/api/v1/auth/register",
            {"email": "other@example.com", "password": "a fine passphrase", "invitation_token": token},
        )
        assert again.status_code == 400 and again.json()["error"]["code"] == "invitation_invalid"

    def test_an_invitation_for_another_address_creates_nothing(
        self, api_client, tenant, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            tenant.client("owner").post("/api/v1/members/", {"email": "new@example.com"})
        token = mail.outbox[0].body.split("invitation=")[1].split()[0]

        response = api_client.post(
            "/api/v1/auth/register",
            {"email": "intruder@example.com", "password": "a fine passphrase", "invitation_token": token},
        )

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invitation_invalid"
        assert not User.objects.filter(email="intruder@example.com").exists()

    def test_an_expired_invitation_is_refused(self, api_client, tenant):
        from django.utils import timezone

        from projects.keys import token_digest

        InvitationFactory(
            project=tenant.project,
            email="late@example.com",
            invitation_digest=token_digest("tok"),
            invitation_expires_at=timezone.now() - timedelta(minutes=1),
        )

        response = api_client.post(
            "/api/v1/auth/register",
            {"email": "late@example.com", "password": "a fine passphrase", "invitation_token": "tok"},
        )

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invitation_invalid"
        assert not User.objects.filter(email="late@example.com").exists()


def test_login_is_throttled(api_client, settings):
    user = UserFactory()
    statuses = [login(api_client, user.email, "wrong").status_code for _ in range(21)]

    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429
    blocked = login(api_client, user.email, "wrong")
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert int(blocked["Retry-After"]) > 0
