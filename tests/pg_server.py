"""A throw-away PostgreSQL server for the tests and benchmarks: ``initdb`` in a temp directory.

Debian's ``postgresql`` package puts the server binaries under ``/usr/lib/postgresql/<n>/bin``.
The server listens on a Unix socket in its own directory (and nowhere else) and trusts local
connections; as root it runs as the ``postgres`` user, since PostgreSQL refuses to run as root.
Set ``EXACT_CONNECTOR_SKIP_POSTGRES=1`` to skip the PostgreSQL tests instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SKIP_ENV = "EXACT_CONNECTOR_SKIP_POSTGRES"
SKIP_REASON = f"{SKIP_ENV} is set"


def skip_requested() -> bool:
    """Whether the environment asks to skip the PostgreSQL tests."""
    return os.environ.get(SKIP_ENV, "") not in ("", "0")


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(
            f"PostgreSQL server binaries not found: install Debian's postgresql package (or set"
            f" {SKIP_ENV}=1)"
        )
    return Path(initdb).parent


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Start a private server; yields its URL (database ``postgres``, superuser, no password).

    ``durable=False`` turns ``fsync`` off (the tests kill clients, never the server).
    """
    bindir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="exact-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    user = "postgres" if os.geteuid() == 0 else None
    init = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-E", "UTF8", "--no-sync"]
    if user:
        init += ["-U", user]
    subprocess.run(_as_server_user(init), check=True, capture_output=True)
    options = f"-k {sockets} -c listen_addresses='' -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    ctl = str(bindir / "pg_ctl")
    log = root / "server.log"
    start = [ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres")
    subprocess.run(_as_server_user(start), check=True, capture_output=True)
    try:
        who = user or os.environ.get("USER") or "postgres"
        yield f"postgresql://{who}@/postgres?host={sockets}"
    finally:
        stop = [ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_server_user(stop), check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def restart(url: str) -> None:
    """Restart the private server of ``url`` (fast shutdown: its clients' connections die), with
    the options it was started with; returns once it answers again."""
    from urllib.parse import parse_qs, urlsplit

    root = Path(parse_qs(urlsplit(url).query)["host"][0]).parent
    ctl = str(_bin_dir() / "pg_ctl")
    argv = [ctl, "-D", str(root / "data"), "-l", str(root / "server.log"), "-m", "fast", "-w"]
    subprocess.run(_as_server_user([*argv, "restart"]), check=True, capture_output=True, timeout=60)


def fresh_schema() -> str:
    """A schema name no other test uses: each test gets an empty vault and governor."""
    return f"t_{uuid.uuid4().hex[:16]}"


def create_database(url: str) -> str:
    """A new empty database on the server of ``url``; returns its URL."""
    import psycopg

    name = f"d_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.replace("/postgres?", f"/{name}?", 1)
