"""The Django admin for accounts and projects: every page renders, writes go through the services,
and no page ever holds an API key in full (but the one right after it is made) or a digest."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import User
from projects.authentication import apikey_authenticate
from projects.keys import key_digest, key_prefix, token_digest
from projects.models import APIKey, Membership, Project, Role, Team
from tests.accounts.factories import UserFactory
from tests.projects.factories import (
    APIKeyFactory,
    InvitationFactory,
    MembershipFactory,
    ProjectFactory,
    TeamFactory,
)

FULL_KEY = re.compile(r"ak_(?:live|test)_[A-Za-z0-9]{40}")
INVITATION_TOKEN = "an-invitation-token"


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root@example.com", "a sturdy passphrase 42", full_name="Root")


@pytest.fixture
def staff(client, superuser):
    client.force_login(superuser)
    return client


@dataclass
class World:
    alpha: Project
    bravo: Project
    owner: User
    member: Membership
    invitation: Membership
    team: Team
    key: APIKey
    test_key: APIKey
    bravo_key: APIKey

    @property
    def keys(self) -> list[APIKey]:
        return [self.key, self.test_key, self.bravo_key]

    @property
    def secrets(self) -> list[str]:
        """Everything no admin page may contain."""
        return [
            *(k.raw for k in self.keys),
            *(k.digest for k in self.keys),
            self.invitation.invitation_digest,
        ]


@pytest.fixture
def world(db) -> World:
    owner = UserFactory(email="olivia@example.com", full_name="Olivia Owner")
    alpha = ProjectFactory(name="Alpha", owner=owner, created_by=owner)
    bravo = ProjectFactory(name="Bravo")
    member = MembershipFactory(project=alpha, user=UserFactory(email="mark@example.com"), role=Role.MEMBER)
    invitation = InvitationFactory(
        project=alpha, email="ivy@example.com", invitation_digest=token_digest(INVITATION_TOKEN)
    )
    team = TeamFactory(project=alpha, name="Support")
    team.members.add(member)
    return World(
        alpha=alpha,
        bravo=bravo,
        owner=owner,
        member=member,
        invitation=invitation,
        team=team,
        key=APIKeyFactory(project=alpha, name="Widget backend", scopes=["read", "write"]),
        test_key=APIKeyFactory(project=alpha, name="Staging", environment=APIKey.Environment.TEST, scopes=["read"]),
        bravo_key=APIKeyFactory(project=bravo, name="Bravo backend", scopes=["admin", "read"]),
    )


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def assert_no_secrets(response, world: World) -> None:
    html = response.content.decode()
    for secret in world.secrets:
        assert secret not in html
    assert not FULL_KEY.search(html)


# --- every page renders -------------------------------------------------------------------


# (model, query, the text of the row that must be listed, the text of a row that must not be)
CHANGELISTS = [
    (User, {"q": "olivia", "is_staff__exact": "0"}, "olivia@example.com", "mark@example.com"),
    (Project, {"q": "alp", "created_at__gte": "2000-01-01 00:00:00+00:00"}, "Alpha", "Bravo"),
    (
        Membership,
        {"q": "Alpha", "role__exact": "member", "status__exact": "active"},
        "mark@example.com",
        "olivia@example.com",
    ),
    (Membership, {"status__exact": "invited"}, "ivy@example.com", "mark@example.com"),
    (Team, {"q": "supp", "created_at__gte": "2000-01-01 00:00:00+00:00"}, "Support", None),
    (APIKey, {"q": "alpha", "environment__exact": "live", "state": "active"}, "Widget backend", "Staging"),
    (APIKey, {"scope": "admin"}, "Bravo backend", "Widget backend"),
]


@pytest.mark.parametrize(("model", "query", "listed", "not_listed"), CHANGELISTS)
def test_changelists_render_with_search_and_filters_applied(staff, world, model, query, listed, not_listed):
    response = staff.get(admin_url(model, "changelist"), query)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    html = response.content.decode()
    assert listed in html
    if not_listed:
        assert not_listed not in html
    assert_no_secrets(response, world)


def _objects(world: World):
    return [
        world.owner,
        world.alpha,
        world.member,
        world.invitation,
        world.team,
        world.key,
        world.test_key,
    ]


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_every_object_page_renders_without_secrets(staff, world, view):
    for obj in _objects(world):
        response = staff.get(admin_url(type(obj), view, obj.pk))

        assert response.status_code == 200, (type(obj).__name__, view)
        assert response.context.get("original", response.context.get("object")) == obj
        assert_no_secrets(response, world)


@pytest.mark.parametrize("model", [User, Project, Membership, Team, APIKey])
def test_add_pages_render(staff, world, model):
    response = staff.get(admin_url(model, "add"))

    assert response.status_code == 200
    assert "adminform" in response.context_data


def test_user_password_page_renders(staff, world):
    response = staff.get(reverse("admin:auth_user_password_change", args=[world.owner.pk]))

    assert response.status_code == 200
    assert "olivia@example.com" in response.content.decode()


def test_project_change_page_lists_its_members_and_teams(staff, world):
    html = staff.get(admin_url(Project, "change", world.alpha.pk)).content.decode()

    assert "mark@example.com" in html
    assert "ivy@example.com" in html
    assert "Support" in html


def test_project_changelist_counts_active_members_and_live_keys(staff, world):
    APIKeyFactory(project=world.alpha, name="Old")
    APIKey.objects.filter(pk=world.key.pk).update(revoked_at=world.key.created_at)

    response = staff.get(admin_url(Project, "changelist"), {"q": "Alpha"})

    [alpha] = response.context["cl"].result_list
    assert alpha.member_count == 2  # the owner and mark; the invitation is not a member yet
    assert alpha.key_count == 2  # staging and "Old"; the widget key is revoked


def test_autocomplete_offers_projects_for_an_api_keys_project(staff, world):
    response = staff.get(
        reverse("admin:autocomplete"),
        {"app_label": "projects", "model_name": "apikey", "field_name": "project", "term": "alp"},
    )

    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Alpha"]


# --- bounded queries ----------------------------------------------------------------------


def _more_rows(world: World) -> None:
    for _ in range(4):
        project = ProjectFactory(created_by=UserFactory())
        member = MembershipFactory(project=project)
        TeamFactory(project=project).members.add(member)
        APIKeyFactory(project=project)
        InvitationFactory(project=project)


@pytest.mark.parametrize("model", [User, Project, Membership, Team, APIKey])
def test_changelist_queries_do_not_grow_with_rows(staff, world, model):
    url = admin_url(model, "changelist")
    staff.get(url)  # warm up: session, content types
    with CaptureQueriesContext(connection) as few:
        assert staff.get(url).status_code == 200
    _more_rows(world)
    with CaptureQueriesContext(connection) as many:
        response = staff.get(url)

    assert response.context["cl"].result_count > 4
    assert len(many) == len(few)


# --- API keys -----------------------------------------------------------------------------


def _add_key(staff, project: Project, **fields):
    data = {
        "project": str(project.pk),
        "name": "Made in the admin",
        "environment": "live",
        "scopes": ["write", "read"],
        "expires_at_0": "",
        "expires_at_1": "",
        **fields,
    }
    return staff.post(admin_url(APIKey, "add"), data)


def test_adding_a_key_creates_one_and_shows_it_once(staff, world, superuser):
    response = _add_key(staff, world.bravo)

    assert response.status_code == 200  # the key page itself, not a redirect to a page without it
    shown = set(FULL_KEY.findall(response.content.decode()))
    assert len(shown) == 1
    raw = shown.pop()
    key = APIKey.objects.get(name="Made in the admin")
    assert key.project == world.bravo
    assert key.digest == key_digest(raw)
    assert key.prefix == key_prefix(raw)
    assert key.scopes == ["read", "write"]
    assert key.created_by == superuser
    assert apikey_authenticate(raw) == key
    assert "no-store" in response["Cache-Control"]
    assert not any(raw in str(m) for m in get_messages(response.wsgi_request))

    for url in (
        admin_url(APIKey, "change", key.pk),
        admin_url(APIKey, "changelist"),
        admin_url(APIKey, "history", key.pk),
    ):
        html = staff.get(url).content.decode()
        assert key.prefix in html
        assert raw not in html
        assert key.digest not in html


def test_an_invalid_key_form_creates_nothing_and_shows_no_key(staff, world):
    response = _add_key(staff, world.bravo, scopes=[], expires_at_0="2001-01-01", expires_at_1="10:00")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors.keys() == {"scopes", "expires_at"}
    assert not APIKey.objects.filter(name="Made in the admin").exists()
    assert not FULL_KEY.search(response.content.decode())


def test_editing_a_key_changes_only_what_the_api_allows(staff, world):
    digest, prefix = world.key.digest, world.key.prefix
    response = staff.post(
        admin_url(APIKey, "change", world.key.pk),
        {"name": "Renamed", "scopes": ["read"], "expires_at_0": "", "expires_at_1": "", "digest": "0" * 64},
    )

    assert response.status_code == 302
    world.key.refresh_from_db()
    assert (world.key.name, world.key.scopes) == ("Renamed", ["read"])
    assert (world.key.digest, world.key.prefix) == (digest, prefix)


def test_revoke_action_revokes_only_the_selected_keys(staff, world):
    response = staff.post(
        admin_url(APIKey, "changelist"),
        {"action": "revoke_selected", "_selected_action": [str(world.key.pk), str(world.bravo_key.pk)], "index": 0},
    )

    assert response.status_code == 302
    for key in world.keys:
        key.refresh_from_db()
    assert world.key.revoked_at is not None
    assert world.bravo_key.revoked_at is not None
    assert world.test_key.revoked_at is None
    with pytest.raises(AuthenticationFailed):
        apikey_authenticate(world.key.raw)
    assert apikey_authenticate(world.test_key.raw) == world.test_key


def test_deleting_a_key_through_the_admin_removes_it(staff, world):
    response = staff.post(admin_url(APIKey, "delete", world.key.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not APIKey.objects.filter(pk=world.key.pk).exists()


def test_create_key_action_asks_first_then_shows_each_new_key_once(staff, world):
    url = admin_url(Project, "changelist")
    selected = [str(world.alpha.pk), str(world.bravo.pk)]
    before = APIKey.objects.count()

    ask = staff.post(url, {"action": "create_key_for_selected", "_selected_action": selected, "index": 0})

    assert ask.status_code == 200
    assert "Create keys" in ask.content.decode()
    assert APIKey.objects.count() == before

    done = staff.post(
        url,
        {
            "action": "create_key_for_selected",
            "_selected_action": selected,
            "apply": "Create keys",
            "name": "Bulk",
            "environment": "test",
            "scopes": ["read"],
            "expires_at": "",
        },
    )

    assert done.status_code == 200
    shown = set(FULL_KEY.findall(done.content.decode()))
    keys = APIKey.objects.filter(name="Bulk")
    assert {k.project_id for k in keys} == {world.alpha.pk, world.bravo.pk}
    assert {key_digest(raw) for raw in shown} == {k.digest for k in keys}
    assert all(raw.startswith("ak_test_") for raw in shown)
    html = staff.get(admin_url(APIKey, "changelist")).content.decode()
    assert not any(raw in html for raw in shown)


def test_secret_fields_cannot_be_probed_through_changelist_lookups(staff, world):
    response = staff.get(admin_url(APIKey, "changelist"), {"digest__startswith": world.key.digest[:4]})
    assert response.status_code == 400

    response = staff.get(admin_url(Membership, "changelist"), {"invitation_digest": world.invitation.invitation_digest})
    assert response.status_code == 400


# --- projects, members and teams ----------------------------------------------------------


def test_adding_a_project_makes_the_chosen_user_its_owner(staff, world):
    response = staff.post(
        admin_url(Project, "add"), {"name": "Charlie", "description": "", "created_by": str(world.owner.pk)}
    )

    assert response.status_code == 302
    project = Project.objects.get(name="Charlie")
    owner = Membership.objects.get(project=project)
    assert (owner.user, owner.role, owner.status) == (world.owner, Role.OWNER, Membership.Status.ACTIVE)


def test_adding_a_member_with_a_new_address_sends_an_invitation(
    staff, world, superuser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            admin_url(Membership, "add"), {"project": str(world.bravo.pk), "email": "New@Example.com", "role": "admin"}
        )

    assert response.status_code == 302
    invited = Membership.objects.get(project=world.bravo, email="new@example.com")
    assert (invited.status, invited.user, invited.invited_by) == (Membership.Status.INVITED, None, superuser)
    assert [m.to for m in mail.outbox] == [["new@example.com"]]


def test_adding_an_existing_user_makes_them_an_active_member(staff, world):
    response = staff.post(
        admin_url(Membership, "add"), {"project": str(world.bravo.pk), "email": "mark@example.com", "role": "viewer"}
    )

    assert response.status_code == 302
    joined = Membership.objects.get(project=world.bravo, email="mark@example.com")
    assert (joined.user, joined.status, joined.role) == (world.member.user, Membership.Status.ACTIVE, Role.VIEWER)


def test_adding_a_member_twice_is_a_form_error(staff, world):
    response = staff.post(
        admin_url(Membership, "add"), {"project": str(world.alpha.pk), "email": "IVY@example.com", "role": "member"}
    )

    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    assert Membership.objects.filter(project=world.alpha, email__iexact="ivy@example.com").count() == 1


def test_the_last_owner_cannot_be_demoted(staff, world):
    owner = Membership.objects.get(project=world.alpha, role=Role.OWNER)

    response = staff.post(admin_url(Membership, "change", owner.pk), {"role": "member"})

    assert response.status_code == 200
    assert "role" in response.context["adminform"].form.errors
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_a_role_change_goes_through(staff, world):
    response = staff.post(admin_url(Membership, "change", world.member.pk), {"role": "admin"})

    assert response.status_code == 302
    world.member.refresh_from_db()
    assert world.member.role == Role.ADMIN


def test_the_last_owner_cannot_be_deleted_but_a_member_can(staff, world):
    owner = Membership.objects.get(project=world.alpha, role=Role.OWNER)

    refused = staff.post(admin_url(Membership, "delete", owner.pk), {"post": "yes"})
    removed = staff.post(admin_url(Membership, "delete", world.member.pk), {"post": "yes"})

    assert refused.status_code == 200
    assert "would be left without an owner" in refused.content.decode()
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert removed.status_code == 302
    assert not Membership.objects.filter(pk=world.member.pk).exists()


def test_team_members_come_only_from_the_teams_project(staff, world):
    outsider = MembershipFactory(project=world.bravo)
    url = admin_url(Team, "change", world.team.pk)

    refused = staff.post(url, {"name": "Support", "description": "", "members": [str(outsider.pk)]})
    accepted = staff.post(url, {"name": "Support", "description": "", "members": [str(world.invitation.pk)]})

    assert "members" in refused.context["adminform"].form.errors
    assert accepted.status_code == 302
    assert list(world.team.members.all()) == [world.invitation]


def test_team_names_stay_unique_per_project_whatever_the_case(staff, world):
    response = staff.post(
        admin_url(Team, "add"), {"project": str(world.alpha.pk), "name": "SUPPORT", "description": ""}
    )
    elsewhere = staff.post(
        admin_url(Team, "add"), {"project": str(world.bravo.pk), "name": "SUPPORT", "description": ""}
    )

    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert elsewhere.status_code == 302
    assert Team.objects.get(project=world.bravo).name == "SUPPORT"


# --- users --------------------------------------------------------------------------------


def test_adding_a_user_through_the_admin_logs_in_by_email(staff, world):
    response = staff.post(
        admin_url(User, "add"),
        {
            "email": "  Zoe@Example.COM ",
            "full_name": "Zoe",
            "usable_password": "true",
            "password1": "another sturdy passphrase 7",
            "password2": "another sturdy passphrase 7",
        },
    )

    assert response.status_code == 302
    user = User.objects.get(email="zoe@example.com")
    assert user.check_password("another sturdy passphrase 7")
    assert not user.is_staff


def test_user_change_page_shows_their_projects(staff, world):
    html = staff.get(admin_url(User, "change", world.owner.pk)).content.decode()

    assert "Alpha" in html
    assert "Owner" in html
