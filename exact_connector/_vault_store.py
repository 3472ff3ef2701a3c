"""The vault's SQLite file: private files, a connection per thread and process, exact transactions.

``<home>`` (``$EXACT_CONNECTOR_HOME``, else the platform's per-user data directory) is 0700 and
holds ``vault.db`` and its ``-wal``/``-shm`` files, all created 0600 before SQLite could create them
0644. Every connection runs in WAL mode with ``synchronous=FULL`` (a committed refresh token
survives power loss) and a busy timeout; every read-modify-write is one ``BEGIN IMMEDIATE``
transaction, so a compare-and-swap is exact across processes. A forked child opens its own
connections and never touches its parent's. Every SQLite failure becomes the vault's own error
through one table, without SQLite's text.

Test-only crash hook: ``EXACT_CONNECTOR_CRASH_AT=<point>[:n]`` exits with status 137 the n-th time
``<point>`` is reached. Points: ``<op>.before_commit`` and ``<op>.after_commit`` for op in begin,
activate, tokens, status, divisions, remove, rotate_start, rotate (once per record), rotate_end,
retire, rewrap; and ``keyfile.before_replace``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from exact_connector import sealing
from exact_connector._vault_keys import DataKeys, corrupt_hint
from exact_connector.clock import Clock
from exact_connector.exceptions import (
    ExactConnectorError,
    VaultBusy,
    VaultCorrupt,
    VaultIntegrityError,
    VaultIOError,
    VaultKeyMismatch,
    VaultKeyUnknown,
    VaultPermissions,
)
from exact_connector.sealing import PRIVATE_OPEN, KeyRing

__all__ = [
    "DB_NAME",
    "Store",
    "absolute_home",
    "crash_point",
    "default_home",
    "ensure_dir",
    "sqlite_errors",
]

HOME_ENV = "EXACT_CONNECTOR_HOME"
DB_NAME = "vault.db"
SCHEMA_VERSION = "1"
CRASH_ENV = "EXACT_CONNECTOR_CRASH_AT"
_CRASH_AT = os.environ.get(CRASH_ENV) or None
_crash_hits: dict[str, int] = {}

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE data_keys (kid TEXT PRIMARY KEY, purpose TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE key_wraps (
    data_kid TEXT NOT NULL REFERENCES data_keys(kid) ON DELETE CASCADE,
    master_kid TEXT NOT NULL, blob BLOB NOT NULL, PRIMARY KEY (data_kid, master_kid));
CREATE TABLE credentials (
    id TEXT PRIMARY KEY, workspace TEXT NOT NULL, connector_name TEXT NOT NULL,
    auth_type TEXT NOT NULL, server_url TEXT NOT NULL, client_id TEXT NOT NULL, redirect_uri TEXT,
    status TEXT NOT NULL, status_reason TEXT, allowed_divisions TEXT NOT NULL,
    default_division INTEGER, client_secret BLOB, refresh_token BLOB, access_token BLOB,
    access_token_issued_at REAL, access_token_expires_at REAL, refresh_token_issued_at REAL,
    version INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    UNIQUE (workspace, connector_name));
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, workspace TEXT,
    credential_id TEXT, event TEXT NOT NULL, detail TEXT NOT NULL);
"""
#: Tables added after the first release of the file format; created at open when missing.
_ADDED = """
CREATE TABLE IF NOT EXISTS sign_ins (
    credential_id TEXT PRIMARY KEY REFERENCES credentials(id) ON DELETE CASCADE,
    state_digest TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trigger_checkpoints (
    key TEXT PRIMARY KEY,
    credential_id TEXT NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    version INTEGER NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL);
"""
_TABLES = frozenset(
    {
        "meta",
        "data_keys",
        "key_wraps",
        "credentials",
        "audit",
        "sign_ins",
        "trigger_checkpoints",
        "sqlite_sequence",
    }
)
_PRAGMAS = (
    "PRAGMA synchronous = FULL",  # WAL + NORMAL may lose a committed refresh token on power loss
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",  # SQLite's own temp files would otherwise land in /tmp
    "PRAGMA secure_delete = ON",
    "PRAGMA trusted_schema = OFF",
    "PRAGMA cell_size_check = ON",
)
#: SQLite primary result code -> (our error, what happened). Raw SQLite text never escapes.
_SQLITE_ERRORS: dict[int, tuple[type[ExactConnectorError], str]] = {
    sqlite3.SQLITE_BUSY: (VaultBusy, "stayed locked by another writer past the busy timeout"),
    sqlite3.SQLITE_LOCKED: (VaultBusy, "is locked by another connection"),
    sqlite3.SQLITE_PERM: (VaultPermissions, "cannot be accessed (permission denied)"),
    sqlite3.SQLITE_READONLY: (VaultPermissions, "is read-only for this user"),
    sqlite3.SQLITE_CANTOPEN: (VaultPermissions, "cannot be opened (missing or not writable)"),
    sqlite3.SQLITE_IOERR: (VaultIOError, "hit an I/O error"),
    sqlite3.SQLITE_FULL: (VaultIOError, "cannot grow: no space left"),
    sqlite3.SQLITE_NOMEM: (VaultIOError, "ran out of memory"),
    sqlite3.SQLITE_CORRUPT: (VaultCorrupt, "is corrupt (malformed database image)"),
    sqlite3.SQLITE_NOTADB: (VaultCorrupt, "is not a database (damaged header)"),
    sqlite3.SQLITE_ERROR: (VaultCorrupt, "does not have the expected structure"),
    sqlite3.SQLITE_CONSTRAINT: (VaultCorrupt, "violates its own constraints"),
}
_ABANDONED: list[sqlite3.Connection] = []  # inherited over fork(): the child must never close them
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def crash_point(name: str) -> None:
    """Test-only: exit abruptly at ``name`` when EXACT_CONNECTOR_CRASH_AT asks for it."""
    if _CRASH_AT is None:
        return
    point, _, nth = _CRASH_AT.partition(":")
    if point == name:
        _crash_hits[name] = _crash_hits.get(name, 0) + 1
        if _crash_hits[name] >= int(nth or 1):
            os._exit(137)


def default_home() -> Path:
    """``$EXACT_CONNECTOR_HOME``, else the platform's per-user data directory."""
    if configured := os.environ.get(HOME_ENV):
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "exact-connector"


def absolute_home(home: str | os.PathLike[str] | None) -> Path:
    """``home`` (else the default) as an absolute path, symlinks left as they are."""
    # abspath, not resolve(): resolving would follow the very symlink we must refuse.
    return Path(os.path.abspath(os.fspath(home) if home is not None else default_home()))


@contextmanager
def sqlite_errors(path: Path) -> Iterator[None]:
    """Translate every sqlite3 error into the vault's own, without SQLite's text or traceback."""
    try:
        yield
    except sqlite3.Error as error:
        code = getattr(error, "sqlite_errorcode", None)
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        cls, what = _SQLITE_ERRORS.get((code or 0) & 0xFF, (VaultIOError, "failed unexpectedly"))
        hint = corrupt_hint(path) if cls is VaultCorrupt else None
        details = {"path": str(path), "sqlite_error": name}
        raise cls(f"vault database {path} {what}", details=details, hint=hint) from None


class Store:
    """One open vault file: its connections (per process and thread), keys and transactions."""

    def __init__(self, home: Path, ring: KeyRing, clock: Clock, busy_timeout: float) -> None:
        self.home, self.path, self.clock = home, home / DB_NAME, clock
        self.busy_timeout = busy_timeout
        self.keys = DataKeys(ring, self.path, clock, self.read)
        self.closed = False
        self._reset_connections()
        _STORES.add(self)

    @property
    def vault_id(self) -> str:
        """The random id every blob in this file is bound to."""
        return self.keys.vault_id

    def _reset_connections(self) -> None:
        # After fork() the parent's connections must be neither used nor closed by the child.
        self._pid = os.getpid()
        self._guard = threading.Lock()
        self._local = threading.local()
        _ABANDONED.extend(getattr(self, "_connections", ()))
        self._connections: list[sqlite3.Connection] = []

    @classmethod
    def open(cls, home: Path, ring: KeyRing, clock: Clock, busy_timeout: float) -> Store:
        """Open (or create) ``<home>/vault.db``, check it, and unlock its keys with ``ring``."""
        ensure_dir(home)
        store = cls(home, ring, clock, busy_timeout)
        fresh = not sealing.check_private_file(store.path, "vault database")
        for suffix in ("-wal", "-shm"):
            sibling = Path(f"{store.path}{suffix}")
            if fresh:
                _precreate(sibling)
            else:
                sealing.check_private_file(sibling, "vault database file")
        if fresh:
            _precreate(store.path)
        elif not os.access(store.path, os.R_OK | os.W_OK):  # fail at start-up, not at a refresh
            raise VaultPermissions(f"vault database {store.path} is not writable by this user")
        try:
            store._open_database()
        except BaseException:
            store.close()
            raise
        return store

    def _open_database(self) -> None:
        conn = self.connection()
        with sqlite_errors(self.path):
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise VaultCorrupt(
                    f"vault database {self.path} failed its integrity check",
                    details={"path": str(self.path), "problems": problems[:5]},
                    hint=corrupt_hint(self.path),
                )
            if not self._tables(conn):
                self._initialize(conn)
            if not {"sign_ins", "trigger_checkpoints"} <= self._tables(conn):
                for statement in filter(str.strip, _ADDED.split(";")):
                    conn.execute(statement)
            if not _TABLES >= self._tables(conn) >= _TABLES - {"sqlite_sequence"}:
                raise VaultCorrupt(
                    f"{self.path} is not an exact-connector vault (unexpected tables)",
                    hint=corrupt_hint(self.path),
                )
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        header = {"vault_id", "fingerprint_key", "primary_data_key"}
        if meta.get("schema_version") != SCHEMA_VERSION or not header <= meta.keys():
            raise VaultCorrupt(
                f"vault {self.path} has no readable header (schema {meta.get('schema_version')!r})",
                hint=corrupt_hint(self.path),
            )
        keys = self.keys
        keys.vault_id = meta["vault_id"]
        try:
            keys.fingerprint_key = keys.get(meta["fingerprint_key"])
            keys.primary_kid = meta["primary_data_key"]
            keys.get(keys.primary_kid)
        except (VaultIntegrityError, VaultKeyUnknown) as error:
            culprit = error.details.get("master_key") or ", ".join(keys.ring.kids)
            sealed = ", ".join(keys.master_kids()) or "none"
            raise VaultKeyMismatch(
                f"the configured vault key {culprit} does not open {self.path}; "
                f"it is sealed under: {sealed}",
                details={"path": str(self.path), "configured": list(keys.ring.kids)},
            ) from None

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _initialize(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not self._tables(conn):  # another process may have won the race
                for statement in _SCHEMA.split(";"):  # executescript() would COMMIT first
                    conn.execute(statement)
                self.keys.vault_id = os.urandom(16).hex()
                meta = {
                    "schema_version": SCHEMA_VERSION,
                    "vault_id": self.keys.vault_id,
                    "fingerprint_key": self.keys.create(conn, "fingerprint"),
                    "primary_data_key": self.keys.create(conn, "data"),
                    "created_at": repr(self.clock.now()),
                }
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def connection(self) -> sqlite3.Connection:
        """This thread's connection; a forked child transparently opens its own."""
        if self._pid != os.getpid():
            self._reset_connections()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.closed:
                raise VaultIOError(f"the vault at {self.home} was closed")
            conn = self._connect()
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        with sqlite_errors(self.path):
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                journal = _enable_wal(conn, time.monotonic() + self.busy_timeout)
                for pragma in _PRAGMAS:
                    conn.execute(pragma)
                synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
            except BaseException:
                conn.close()
                raise
        if journal != "wal" or synchronous < 2:
            conn.close()
            raise VaultIOError(
                f"{self.path} cannot run in WAL mode with FULL sync (network drive?)"
            )
        return conn

    @contextmanager
    def write(self, op: str) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: all or nothing, serialized across processes."""
        conn = self.connection()
        with sqlite_errors(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                self.keys.follow_primary(conn)
                yield conn
                crash_point(f"{op}.before_commit")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        crash_point(f"{op}.after_commit")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads, with SQLite errors translated."""
        conn = self.connection()
        with sqlite_errors(self.path):
            yield conn

    def audit(
        self,
        conn: sqlite3.Connection,
        event: str,
        workspace: str | None,
        credential_id: str | None,
        detail: Mapping[str, Any],
    ) -> None:
        """Append one audit event inside the caller's transaction."""
        conn.execute(
            "INSERT INTO audit (at, workspace, credential_id, event, detail) VALUES (?,?,?,?,?)",
            (self.clock.now(), workspace, credential_id, event, json.dumps(detail)),
        )

    def close(self) -> None:
        """Close every connection of this process; later use raises VaultIOError."""
        self.closed = True
        if self._pid != os.getpid():
            return
        with self._guard:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _enable_wal(conn: sqlite3.Connection, deadline: float) -> str:
    # Switching the journal mode answers SQLITE_BUSY at once, without the busy handler.
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def ensure_dir(path: Path) -> None:
    """Create the vault directory 0700 if needed; refuse one that is not private."""
    try:
        os.makedirs(path.parent, exist_ok=True)
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise VaultPermissions(f"cannot create vault directory {path}: {error.strerror}") from None
    sealing.check_private_dir(path)


def _precreate(path: Path) -> None:
    # SQLite would create the file 0644 under umask 022; an O_EXCL 0600 file comes first.
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | PRIVATE_OPEN, 0o600))
    except FileExistsError:
        sealing.check_private_file(path, "vault database file")
    except OSError as error:
        raise VaultPermissions(f"cannot create {path}: {error.strerror}") from None


def _after_fork() -> None:
    for store in list(_STORES):
        store._reset_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
