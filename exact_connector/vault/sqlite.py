"""The vault's SQLite backend: one file per home, its schema, and SQLite's errors translated.

``<home>`` holds ``vault.db`` and its ``-wal``/``-shm`` files, all created 0600 before SQLite could
create them 0644, and ``vault.db-gen``, the commit signal that spares a read asking SQLite whether
anything changed (:mod:`exact_connector.vault.generation`). Every connection runs in WAL mode with
``synchronous=FULL`` (a committed refresh token survives power loss) and a busy timeout; every
read-modify-write is one ``BEGIN IMMEDIATE`` transaction, so a compare-and-swap is exact across
processes. A forked child opens its own connections and never touches its parent's. Every SQLite
failure becomes the vault's own error through one table, without SQLite's text. The refresh lease
is a ``flock`` on a lock file (:mod:`exact_connector.vault.locks`).

:class:`SQLiteStore` implements :class:`~exact_connector.vault.store.VaultStore`; its sessions are
the shared :class:`~exact_connector.vault.sql.SQLSession` in the SQLite dialect.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from exact_connector import _sqlite
from exact_connector.exceptions import (
    TokenRefreshInProgress,
    VaultBusy,
    VaultCorrupt,
    VaultIOError,
    VaultPermissions,
)
from exact_connector.vault._files import check_private_file, ensure_dir
from exact_connector.vault.generation import Generation
from exact_connector.vault.locks import credential_lock
from exact_connector.vault.sql import SQLITE, SQLSession
from exact_connector.vault.store import (
    ErrorKind,
    Initializer,
    backend_error,
    corrupt_hint,
    crash_point,
)

__all__ = ["DB_NAME", "SQLiteStore", "sqlite_errors"]

DB_NAME = "vault.db"
#: The commit signal beside the database (:mod:`exact_connector.vault.generation`).
GENERATION_SUFFIX = "-gen"
SCHEMA_VERSION = "1"

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
_SQLITE_ERRORS: dict[int, tuple[ErrorKind, str]] = {
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


def _translate(path: Path) -> Callable[[Exception], Exception]:
    def make(error: Exception) -> Exception:
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        unexpected = (VaultIOError, "failed unexpectedly")
        kind, what = _SQLITE_ERRORS.get(_sqlite.error_code(error), unexpected)
        return backend_error(kind, str(path), what, {"path": str(path), "sqlite_error": name})

    return make


def sqlite_errors(path: Path) -> AbstractContextManager[None]:
    """Translate every sqlite3 error into the vault's own, without SQLite's text or traceback."""
    return _sqlite.translated(_translate(path))


class SQLiteStore:
    """One open vault file: a connection per process and thread, and exact transactions."""

    #: Seconds a thread trusts an unchanged commit signal before it asks SQLite again: how late
    #: it may see a commit the signal missed (another program's edit, a writer killed between
    #: its commit and its signal). Every commit made through the connector is seen at once.
    FRESH_FOR = 0.25

    def __init__(self, home: Path, busy_timeout: float) -> None:
        self.home, self.path = home, home / DB_NAME
        self.where = str(self.path)
        #: Which database this is, whatever Vault object opened it (see ``Vault.place``).
        self.place: Hashable = ("sqlite", str(self.path.resolve()))
        self.busy_timeout = busy_timeout
        self.closed = False
        self._generation: Generation | None = None
        self.reset_after_fork()
        _sqlite.reset_after_fork(self)

    def reset_after_fork(self) -> None:
        """Forget the parent's connections (never close them): they are not this process's."""
        _sqlite.abandon(getattr(self, "_connections", ()))
        self._guard = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._serial = getattr(self, "_serial", 0)  # connections opened: never reused as a token

    @classmethod
    def open(cls, home: Path, busy_timeout: float, initialize: Initializer) -> SQLiteStore:
        """Open (or create) ``<home>/vault.db`` and check it; ``initialize`` writes a new header.

        Only a missing file is created and initialized, under the creation lock: a file that
        exists without a vault in it (empty, truncated) is ``VaultCorrupt``, never started afresh.
        """
        ensure_dir(home)
        store = cls(home, busy_timeout)
        try:
            if check_private_file(store.path, "vault database"):
                store._open_existing(initialize)
            else:
                with store._creation():
                    for suffix in ("-wal", "-shm", ""):
                        _precreate(Path(f"{store.path}{suffix}"))
                    store._open_database(initialize, creating=True)
            # After the database: a vault made before the signal existed gets one here.
            store._generation = Generation.open(Path(f"{store.path}{GENERATION_SUFFIX}"))
        except BaseException:
            store.close()
            raise
        return store

    def _open_existing(self, initialize: Initializer) -> None:
        for suffix in ("-wal", "-shm"):
            check_private_file(Path(f"{self.path}{suffix}"), "vault database file")
        if not os.access(self.path, os.R_OK | os.W_OK):  # fail at start-up, not at a refresh
            raise VaultPermissions(f"vault database {self.path} is not writable by this user")
        if self.path.stat().st_size == 0:  # checked before SQLite writes a header into it
            with self._creation():  # its creator may be initializing it right now
                if self.path.stat().st_size == 0:
                    raise self._not_a_vault()
        self._open_database(initialize, creating=False)

    def _not_a_vault(self) -> VaultCorrupt:
        return VaultCorrupt(
            f"vault database {self.path} exists but holds no vault (an empty or truncated file); "
            "it was not re-created",
            details={"path": str(self.path)},
            hint=corrupt_hint(self.where),
        )

    @contextmanager
    def _creation(self) -> Iterator[None]:
        """Held while a new vault file is created and initialized (by one process at a time)."""
        try:
            with credential_lock(self.home, "vault-creation", self.busy_timeout):
                yield
        except TokenRefreshInProgress:
            raise VaultBusy(f"another process has been creating {self.path} too long") from None

    def _open_database(self, initialize: Initializer, *, creating: bool) -> None:
        conn = self.connection()
        with sqlite_errors(self.path):
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise VaultCorrupt(
                    f"vault database {self.path} failed its integrity check",
                    details={"path": str(self.path), "problems": problems[:5]},
                    hint=corrupt_hint(self.where),
                )
            if not creating and not self._tables(conn):
                # Another process may be creating it right now: it holds the creation lock.
                with self._creation():
                    if not self._tables(conn):
                        raise self._not_a_vault()
            if not self._tables(conn):
                self._initialize(conn, initialize)
            if not {"sign_ins", "trigger_checkpoints"} <= self._tables(conn):
                for statement in filter(str.strip, _ADDED.split(";")):
                    conn.execute(statement)
            if not _TABLES >= self._tables(conn) >= _TABLES - {"sqlite_sequence"}:
                raise VaultCorrupt(
                    f"{self.path} is not an exact-connector vault (unexpected tables)",
                    hint=corrupt_hint(self.where),
                )
            version = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'")
            schema = next((row[0] for row in version), None)
        if schema != SCHEMA_VERSION:
            raise VaultCorrupt(
                f"vault {self.path} has no readable header (schema {schema!r})",
                hint=corrupt_hint(self.where),
            )

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def _initialize(self, conn: sqlite3.Connection, initialize: Initializer) -> None:
        with _sqlite.immediate(conn):
            if not self._tables(conn):  # another process may have won the race
                for statement in _SCHEMA.split(";"):  # executescript() would COMMIT first
                    conn.execute(statement)
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
                initialize(SQLSession(conn, SQLITE))

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.closed:
                raise VaultIOError(f"the vault at {self.home} was closed")
            conn = self._connect()
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
                self._serial += 1
                self._local.serial, self._local.writes = self._serial, 0
        return conn

    def _connect(self) -> sqlite3.Connection:
        with sqlite_errors(self.path):
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            # Text that is not UTF-8 (a row edited outside) is read, not refused for the whole
            # query: the record it is in is reported unreadable, and only that one.
            conn.text_factory = _lenient_text
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                journal = _sqlite.enable_wal(conn, self.busy_timeout)
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
    def write(self, op: str) -> Iterator[SQLSession]:
        """A ``BEGIN IMMEDIATE`` transaction: all or nothing, serialized across processes."""
        conn = self.connection()
        before_commit = functools.partial(crash_point, f"{op}.before_commit")
        try:
            with sqlite_errors(self.path), _sqlite.immediate(conn, before_commit):
                yield SQLSession(conn, SQLITE)
        finally:
            self._local.writes = getattr(self._local, "writes", 0) + 1
            if (generation := self._generation) is not None:
                generation.bump()  # after the commit (or the rollback, which costs a re-check)
        crash_point(f"{op}.after_commit")

    def version(self) -> tuple[int, int, int]:
        """This thread's connection, its ``PRAGMA data_version`` (which moves when any *other*
        connection commits) and how many writes it made itself (which that pragma does not see).

        While the commit signal is unchanged since this thread last asked SQLite, for at most
        :attr:`FRESH_FOR` seconds, the answer it got then: no statement, no system call.
        """
        conn = self.connection()
        local, generation = self._local, self._generation
        signal = generation.read() if generation is not None else None
        now = time.monotonic()  # real time: how long since SQLite was asked, not product time
        last: _Check | None = getattr(local, "last_check", None)
        # This thread's own writes change the signal too (``write`` signals after each one).
        if signal is not None and last and last[0] == signal and now < last[1]:
            return last[2]
        try:  # read the signal first: a commit after it changes the signal for the next call
            (data_version,) = conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as error:
            raise _translate(self.path)(error) from None
        version = (local.serial, int(data_version), getattr(local, "writes", 0))
        local.last_check = (signal, now + self.FRESH_FOR, version)
        return version

    @contextmanager
    def read(self) -> Iterator[SQLSession]:
        """A session for reads, with SQLite errors translated."""
        conn = self.connection()
        with sqlite_errors(self.path):
            yield SQLSession(conn, SQLITE)

    def lease(self, credential_id: str, timeout: float) -> AbstractContextManager[None]:
        """The credential's refresh lease: a thread mutex plus ``flock`` on its lock file."""
        return credential_lock(self.home, credential_id, timeout)

    def close(self) -> None:
        """Close every connection of this process; later use raises VaultIOError."""
        self.closed = True
        self._generation = None  # unmapped when no thread holds it any more
        with self._guard:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


#: A thread's last question to SQLite: the signal then, until when the answer may be reused, and
#: the answer.
_Check = tuple[bytes | None, float, tuple[int, int, int]]


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _precreate(path: Path) -> None:
    # SQLite would create the file 0644 under umask 022; an O_EXCL 0600 file comes first.
    try:
        created = _sqlite.create_private_file(path)
    except OSError as error:
        raise VaultPermissions(f"cannot create {path}: {error.strerror}") from None
    if not created:
        check_private_file(path, "vault database file")
