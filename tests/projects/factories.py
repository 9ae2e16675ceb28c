import factory
from django.utils import timezone

from projects.models import APIKey, Membership, Project, Role, Team
from projects.services import apikey_create
from tests.accounts.factories import UserFactory


class ProjectFactory(factory.django.DjangoModelFactory):
    """A project; ``owner=`` (default: a new user) becomes its owner, as project_create does."""

    class Meta:
        model = Project
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Project {n}")
    description = "A project"

    @factory.post_generation
    def owner(project, create, extracted, **kwargs):
        if create and extracted is not False:
            MembershipFactory(project=project, user=extracted or UserFactory(), role=Role.OWNER)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    email = factory.LazyAttribute(lambda m: m.user.email if m.user else "someone@example.com")
    role = Role.MEMBER
    status = Membership.Status.ACTIVE
    joined_at = factory.LazyFunction(timezone.now)


class InvitationFactory(MembershipFactory):
    user = None
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    status = Membership.Status.INVITED
    joined_at = None


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"Team {n}")


class APIKeyFactory(factory.django.DjangoModelFactory):
    """An API key made by the real service; the plaintext is on ``.raw`` (never stored)."""

    class Meta:
        model = APIKey

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    scopes = factory.LazyFunction(lambda: ["read", "write"])
    environment = APIKey.Environment.LIVE
    expires_at = None

    @classmethod
    def _create(cls, model_class, **kwargs):
        created = apikey_create(**kwargs)
        created.api_key.raw = created.raw
        return created.api_key
