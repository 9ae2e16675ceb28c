"""``make run``: migrate, seed the dev project, then run the API (uvicorn), one Celery worker
and Celery beat together.

Starts the embedded servers first when ``DATABASE_URL`` / ``REDIS_URL`` are unset and hands
their URLs to the children, so all three share them. Ctrl-C (or SIGTERM) stops the children,
then the embedded servers this command started (servers that were already running, say for
another checkout's shell, are left alone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from config import embedded

    call_command("migrate", interactive=False, verbosity=1)
    call_command("seed_dev")

    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL}
    python = sys.executable
    commands = {
        "api": [python, "-m", "uvicorn", "config.asgi:application", "--host", host, "--port", port, "--no-access-log"],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "-Q",
            f"celery,{settings.CELERY_LLM_QUEUE}",
        ],
        "beat": [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
    }
    children = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    base = f"http://{host}:{port}"
    print(
        "\nAgentDesk is starting:\n"
        f"  API        {base}/api/v1/\n"
        f"  API docs   {base}/api/docs/   (ReDoc: {base}/api/redoc/)\n"
        f"  admin      {base}/admin/      (dev@agentdesk.local / agentdesk-dev)\n"
        f"  health     {base}/healthz  {base}/readyz\n"
        f"  API key    dev   e.g. curl -H 'Authorization: Bearer dev' {base}/api/v1/projects/\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )

    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    try:
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping the rest", flush=True)
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.5)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        from django.db import connections

        connections.close_all()
        embedded.stop_started_here(settings.DATA_DIR)
        print("stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
