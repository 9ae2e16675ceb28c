"""Projects, members (roles, invitations, the last owner), teams."""

from __future__ import annotations

import pytest
from django.core import mail

from projects.models import Membership, Project, Role, Team
from tests.accounts.factories import UserFactory
from tests.conftest import user_client
from tests.projects.factories import MembershipFactory, ProjectFactory, TeamFactory

pytestmark = pytest.mark.django_db


class TestProjects:
    def test_creating_a_project_makes_the_creator_its_owner(self):
        user = UserFactory()

        response = user_client(user).post("/api/v1/projects/", {"name": "Acme", "description": "help desk"})

        assert response.status_code == 201, response.content
        assert response.json()["role"] == "owner"
        membership = Membership.objects.get(project_id=response.json()["id"])
        assert (membership.user, membership.role, membership.status) == (user, "owner", "active")

    def test_a_user_lists_only_projects_they_belong_to_with_their_role(self, tenant, other_tenant):
        response = user_client(tenant.viewer).get("/api/v1/projects/")

        assert [(p["name"], p["role"]) for p in response.json()["results"]] == [("Alpha", "viewer")]

    def test_only_admins_rename_and_only_owners_delete(self, tenant):
        url = f"/api/v1/projects/{tenant.project.pk}/"

        member = user_client(tenant.member).patch(url, {"name": "X"})
        owner = user_client(tenant.owner).patch(url, {"name": "Renamed"})
        admin_key_delete = tenant.client("admin_key").delete(url)

        assert member.status_code == 403 and member.json()["error"]["code"] == "insufficient_role"
        assert owner.status_code == 200 and owner.json()["name"] == "Renamed"
        assert admin_key_delete.status_code == 403
        assert user_client(tenant.owner).delete(url).status_code == 204
        assert not Project.objects.filter(pk=tenant.project.pk).exists()
        assert not Membership.objects.filter(project_id=tenant.project.pk).exists()

    def test_jwt_requests_to_scoped_endpoints_need_the_project_header(self, tenant):
        response = user_client(tenant.owner).get("/api/v1/teams/")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "project_required"

    def test_a_malformed_project_header_is_404(self, tenant):
        client = user_client(tenant.owner)
        client.defaults["HTTP_X_PROJECT_ID"] = "not-a-uuid"

        assert client.get("/api/v1/teams/").json()["error"]["code"] == "project_not_found"


class TestMembers:
    def test_inviting_an_existing_user_adds_them_at_once(self, tenant):
        grace = UserFactory(email="grace@example.com")

        response = tenant.client("owner").post("/api/v1/members/", {"email": "GRACE@example.com", "role": "admin"})

        assert response.status_code == 201
        assert response.json()["status"] == "active" and response.json()["user"]["id"] == str(grace.pk)
        assert user_client(grace, tenant.project).get("/api/v1/teams/").status_code == 200
        assert mail.outbox == []

    def test_inviting_a_new_address_sends_an_invitation(self, tenant, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            response = tenant.client("admin_key").post("/api/v1/members/", {"email": "new@example.com"})

        assert response.status_code == 201
        assert response.json()["status"] == "invited" and response.json()["user"] is None
        assert len(mail.outbox) == 1 and "Alpha" in mail.outbox[0].subject
        assert "invitation=" in mail.outbox[0].body

    def test_inviting_twice_is_a_conflict(self, tenant):
        client = tenant.client("owner")
        client.post("/api/v1/members/", {"email": "new@example.com"})

        again = client.post("/api/v1/members/", {"email": "New@Example.com"})
        member = client.post("/api/v1/members/", {"email": tenant.member.email})

        assert again.status_code == 409 and again.json()["error"]["code"] == "already_member"
        assert member.status_code == 409
        assert Membership.objects.filter(project=tenant.project, email="new@example.com").count() == 1

    @pytest.mark.parametrize("who", ["member", "viewer", "write_key", "read_key"])
    def test_only_admins_and_owners_manage_members(self, tenant, who):
        response = tenant.client(who).post("/api/v1/members/", {"email": "x@example.com"})

        assert response.status_code == 403
        assert not Membership.objects.filter(email="x@example.com").exists()

    def test_viewers_can_list_members(self, tenant):
        response = tenant.client("viewer").get("/api/v1/members/", {"role": "owner"})

        assert [m["email"] for m in response.json()["results"]] == [tenant.owner.email]

    def test_roles_change_and_only_owners_touch_ownership(self, tenant):
        admin = MembershipFactory(project=tenant.project, role=Role.ADMIN)
        member = Membership.objects.get(project=tenant.project, user=tenant.member)
        as_admin = user_client(admin.user, tenant.project)

        promoted = as_admin.patch(f"/api/v1/members/{member.pk}/", {"role": "admin"})
        to_owner = as_admin.patch(f"/api/v1/members/{member.pk}/", {"role": "owner"})
        by_owner = tenant.client("owner").patch(f"/api/v1/members/{member.pk}/", {"role": "owner"})

        assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
        assert to_owner.status_code == 400 and to_owner.json()["error"]["code"] == "owner_required"
        assert by_owner.status_code == 200 and by_owner.json()["role"] == "owner"

    def test_the_last_owner_can_neither_leave_nor_be_demoted(self, tenant):
        own = Membership.objects.get(project=tenant.project, user=tenant.owner)
        client = tenant.client("owner")

        leave = client.delete(f"/api/v1/members/{own.pk}/")
        demote = client.patch(f"/api/v1/members/{own.pk}/", {"role": "admin"})

        assert leave.status_code == 409 and leave.json()["error"]["code"] == "last_owner"
        assert demote.status_code == 409
        own.refresh_from_db()
        assert own.role == "owner"

    def test_an_owner_can_leave_once_there_is_another_owner(self, tenant):
        MembershipFactory(project=tenant.project, role=Role.OWNER)
        own = Membership.objects.get(project=tenant.project, user=tenant.owner)

        assert tenant.client("owner").delete(f"/api/v1/members/{own.pk}/").status_code == 204

    def test_any_member_may_leave(self, tenant):
        own = Membership.objects.get(project=tenant.project, user=tenant.viewer)

        response = tenant.client("viewer").delete(f"/api/v1/members/{own.pk}/")

        assert response.status_code == 204
        assert tenant.client("viewer").get("/api/v1/teams/").status_code == 404

    def test_members_cannot_remove_others(self, tenant):
        viewer = Membership.objects.get(project=tenant.project, user=tenant.viewer)

        assert tenant.client("member").delete(f"/api/v1/members/{viewer.pk}/").status_code == 403
        assert Membership.objects.filter(pk=viewer.pk).exists()


class TestTeams:
    def test_teams_hold_members_of_their_own_project_only(self, tenant, other_tenant):
        ours = Membership.objects.get(project=tenant.project, user=tenant.member)
        foreign = Membership.objects.get(project=other_tenant.project, user=other_tenant.member)
        client = tenant.client("member")

        ok = client.post("/api/v1/teams/", {"name": "Support", "members": [str(ours.pk)]}, format="json")
        bad = client.post("/api/v1/teams/", {"name": "Sales", "members": [str(foreign.pk)]}, format="json")

        assert ok.status_code == 201 and ok.json()["members"] == [str(ours.pk)]
        assert bad.status_code == 400 and "members" in bad.json()["error"]["details"]
        assert not Team.objects.filter(name="Sales").exists()

    def test_team_names_are_unique_per_project_ignoring_case(self, tenant, other_tenant):
        TeamFactory(project=tenant.project, name="Support")
        TeamFactory(project=other_tenant.project, name="Billing")

        clash = tenant.client("member").post("/api/v1/teams/", {"name": "support"})
        elsewhere = tenant.client("member").post("/api/v1/teams/", {"name": "billing"})

        assert clash.status_code == 400 and "name" in clash.json()["error"]["details"]
        assert elsewhere.status_code == 201

    def test_viewers_cannot_write_teams(self, tenant):
        response = tenant.client("viewer").post("/api/v1/teams/", {"name": "Support"})

        assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_role"

    def test_team_lists_search_order_and_paginate(self, tenant):
        for name in ["Zulu", "Alpha team", "Mike"]:
            TeamFactory(project=tenant.project, name=name)
        client = tenant.client("viewer")

        ordered = client.get("/api/v1/teams/", {"ordering": "-name", "page_size": 2}).json()
        searched = client.get("/api/v1/teams/", {"search": "alp"}).json()

        assert ordered["count"] == 3 and [t["name"] for t in ordered["results"]] == ["Zulu", "Mike"]
        assert ordered["next"] and ordered["previous"] is None
        assert [t["name"] for t in searched["results"]] == ["Alpha team"]

    def test_page_size_is_bounded(self, tenant):
        for i in range(3):
            TeamFactory(project=tenant.project, name=f"T{i}")

        response = tenant.client("viewer").get("/api/v1/teams/", {"page_size": 100000})

        assert response.status_code == 200 and len(response.json()["results"]) == 3

    def test_team_list_query_count_does_not_grow_with_rows(self, tenant, django_assert_max_num_queries):
        membership = Membership.objects.get(project=tenant.project, user=tenant.member)
        for i in range(20):
            TeamFactory(project=tenant.project, name=f"T{i}").members.add(membership)
        client = tenant.client("viewer")

        with django_assert_max_num_queries(5):
            response = client.get("/api/v1/teams/")
        assert len(response.json()["results"]) == 20


def test_a_project_deleted_under_a_user_is_404_for_them(tenant):
    ProjectFactory()  # noise
    client = tenant.client("owner")
    Project.objects.filter(pk=tenant.project.pk).delete()

    assert client.get("/api/v1/teams/").status_code == 404
