"""Operate the embedded PostgreSQL and Valkey (used when DATABASE_URL / REDIS_URL are unset)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from config import embedded


class Command(BaseCommand):
    help = "Show or stop the embedded database and Redis-compatible servers under AGENTDESK_DATA_DIR."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action: str, **options):
        if action == "status":
            self.stdout.write(f"data dir  {settings.DATA_DIR}")
            self.stdout.write(f"database  {settings.DATABASE_URL}")
            self.stdout.write(f"redis     {settings.REDIS_URL}")
            return
        from django.db import connections

        connections.close_all()
        stopped = [
            name
            for name, stop in (("valkey", embedded.stop_valkey), ("postgres", embedded.stop_postgres))
            if stop(settings.DATA_DIR)
        ]
        self.stdout.write("stopped: " + (", ".join(stopped) or "nothing was running"))
