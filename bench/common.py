"""What every benchmark does around its measurements: its own data directory, Django on the
embedded servers there (never a configured database), and stopping what it started."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / ".data" / "bench"


def django_setup(*, unset: tuple[str, ...] = ()) -> None:
    """Point Django at ``.data/bench`` before it is imported, start the embedded PostgreSQL and
    Valkey there (``python -m config.embedded stop .data/bench`` if a run is killed), migrate.
    ``DATABASE_URL`` and ``REDIS_URL`` are ignored, so a benchmark never touches real data."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    os.environ.update(
        {
            "AGENTDESK_DATA_DIR": str(DATA_DIR),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_ENV": "development",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    for name in ("DATABASE_URL", "REDIS_URL", *unset):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def stop_embedded() -> None:
    """Stop the embedded servers this process started (only those)."""
    if "config.embedded" in sys.modules:  # not via settings: importing them would start the servers
        sys.modules["config.embedded"].stop_started_here(DATA_DIR)
