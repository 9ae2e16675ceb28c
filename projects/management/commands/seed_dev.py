"""Seed a development project: a staff user, a project, and the API key ``dev``."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from projects.keys import DEV_KEY, key_digest
from projects.models import APIKey, Membership
from projects.services import apikey_create, project_create

DEV_EMAIL = "dev@agentdesk.local"
DEV_PASSWORD = "agentdesk-dev"
DEV_PROJECT = "Development"


class Command(BaseCommand):
    help = "Create (or find) the development user, project and the API key 'dev'. Idempotent."

    def handle(self, *args, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("seed_dev refuses to run with DJANGO_ENV=production")
        with transaction.atomic():
            user = User.objects.filter(email=DEV_EMAIL).first()
            if user is None:
                user = User.objects.create_superuser(DEV_EMAIL, DEV_PASSWORD, full_name="Dev Admin")
            key = APIKey.objects.select_related("project").filter(digest=key_digest(DEV_KEY)).first()
            if key is None:
                membership = Membership.objects.filter(user=user, project__name=DEV_PROJECT).select_related("project")
                project = membership.first().project if membership.exists() else None
                project = project or project_create(creator=user, name=DEV_PROJECT, description="Seeded by seed_dev")
                key = apikey_create(
                    project=project, name="dev", scopes=["read", "write", "admin"], created_by=user, raw=DEV_KEY
                ).api_key
        self.stdout.write(
            f"user      {DEV_EMAIL} / {DEV_PASSWORD}\n"
            f"project   {key.project.name} ({key.project_id})\n"
            f"api key   dev  (accepted only when DJANGO_ENV=development)"
        )
