"""The vault: credentials encrypted at rest in one SQLite file, safe across threads and processes.

``<home>`` (0700) holds ``vault.db`` (+ ``-wal``/``-shm``, all 0600), the optional key file
``vault.key`` (0600) and ``locks/<credential id>.lock``. The database runs in WAL mode with
``synchronous=FULL`` (a committed refresh token survives power loss), a busy timeout, and ``BEGIN
IMMEDIATE`` around every read-modify-write, so a compare-and-swap on ``version`` is exact across
processes. Each secret field is its own AES-256-GCM blob (see :mod:`exact_connector.sealing`).

Everything fails closed: a missing, wrong or unknown key, a tampered or truncated blob and a corrupt
file each raise their own error naming the credential and field, never a value, and one broken
record leaves every other one readable.

Files are private or refused: a symlink, another owner, or a mode open to group/others makes
:class:`VaultPermissions` with the ``chmod`` that fixes it; modes are never changed silently.

Test-only crash hook: ``EXACT_CONNECTOR_CRASH_AT=<point>[:n]`` exits with status 137 the n-th time
``<point>`` is reached. Points: ``<op>.before_commit`` and ``<op>.after_commit`` for op in begin,
activate, tokens, status, divisions, remove, rotate_start, rotate (once per record), rotate_end,
retire, rewrap; and ``keyfile.before_replace``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import sqlite3
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from exact_connector import sealing
from exact_connector.clock import Clock, SystemClock
from exact_connector.exceptions import (
    ConcurrentUpdate,
    ConfigError,
    CredentialExists,
    CredentialNotFound,
    ExactConnectorError,
    InputError,
    TokenRefreshInProgress,
    VaultBusy,
    VaultCorrupt,
    VaultIntegrityError,
    VaultIOError,
    VaultKeyError,
    VaultKeyMismatch,
    VaultKeyUnknown,
    VaultPermissions,
)
from exact_connector.sealing import KEY_FILE_NAME, PRIVATE_OPEN, KeyRing, MasterKey

if sys.platform != "win32":
    import fcntl

__all__ = [
    "AuditEntry",
    "Credential",
    "KeyInfo",
    "RotationReport",
    "Vault",
    "VerifyResult",
    "crash_point",
    "default_home",
]

HOME_ENV = "EXACT_CONNECTOR_HOME"
CRASH_ENV = "EXACT_CONNECTOR_CRASH_AT"
DB_NAME = "vault.db"
SCHEMA_VERSION = "1"
SECRET_FIELDS = ("client_secret", "refresh_token", "access_token")
_CRASH_AT = os.environ.get(CRASH_ENV) or None
_crash_hits: dict[str, int] = {}


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


# --- models --------------------------------------------------------------------------------------

Status = Literal["pending", "active", "needs_reauth", "disabled"]
AuthType = Literal["oauth2_authorization_code", "oauth2_refresh_token"]
STATUSES: tuple[str, ...] = get_args(Status)
_PRINTABLE = r"^[^\s\x00-\x1f\x7f]+$"
_Id = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
_Workspace = Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
_Name = Annotated[
    str,
    Field(max_length=100, pattern=r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"),
]
_Url = Annotated[str, Field(max_length=2048, pattern=_PRINTABLE)]
_Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")]
_Secret = Annotated[SecretStr, Field(min_length=1, max_length=65536)]
_Division = Annotated[int, Field(ge=1, le=2**31 - 1)]
_Epoch = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Inconsistent(ValueError):
    """A cross-field rule failed; ``field`` names the field to blame."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


def _error_field(error: Mapping[str, Any]) -> str:
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _Inconsistent):
        return cause.field
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])[1:]


class Credential(BaseModel):
    """One stored connection; secrets are ``SecretStr`` and never appear in repr, str or dumps."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, strict=True, extra="forbid")

    id: _Id
    workspace: _Workspace
    connector_name: _Name
    auth_type: AuthType
    server_url: _Url
    client_id: _Url
    redirect_uri: _Url | None
    status: Status
    allowed_divisions: tuple[_Division, ...]
    default_division: _Division | None
    client_secret: _Secret
    refresh_token: _Secret | None
    access_token: _Secret | None
    access_token_issued_at: _Epoch | None
    access_token_expires_at: _Epoch | None
    refresh_token_issued_at: _Epoch | None
    version: Annotated[int, Field(ge=1)]
    created_at: _Epoch
    updated_at: _Epoch
    status_reason: _Reason | None

    @model_validator(mode="after")
    def _consistent(self) -> Credential:
        if (
            self.default_division is not None
            and self.default_division not in self.allowed_divisions
        ):
            raise _Inconsistent("default_division", "is not one of allowed_divisions")
        if self.access_token is not None and self.access_token_expires_at is None:
            raise _Inconsistent("access_token_expires_at", "is required with an access token")
        if self.status == "active" and self.refresh_token is None:
            raise _Inconsistent("refresh_token", "is required while the status is active")
        return self

    def __str__(self) -> str:
        return f"{self.connector_name} ({self.id}, {self.status})"


class VerifyResult(BaseModel):
    """The outcome of decrypting one record: ok, or the error code and field that failed."""

    model_config = ConfigDict(frozen=True)

    id: str
    workspace: str
    connector_name: str
    ok: bool
    error_code: str | None = None
    field: str | None = None


class RotationReport(BaseModel):
    """What a key rotation did; ``failed`` lists records that could not be re-encrypted."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["data", "master"]
    new_kid: str
    resumed: bool
    reencrypted: int
    unchanged: int
    retired: tuple[str, ...]
    failed: tuple[VerifyResult, ...]

    @property
    def ok(self) -> bool:
        """True when every record verified after the rotation."""
        return not self.failed


class KeyInfo(BaseModel):
    """One key the vault knows: master keys wrap data keys, data keys seal records."""

    model_config = ConfigDict(frozen=True)

    kid: str
    kind: Literal["master", "data", "fingerprint"]
    primary: bool
    available: bool
    records: int | None = None


class AuditEntry(BaseModel):
    """One audit event; secrets appear only as HMAC fingerprints."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: float
    workspace: str | None
    credential_id: str | None
    event: str
    detail: dict[str, Any]


# --- SQLite --------------------------------------------------------------------------------------

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
_TABLES = frozenset({"meta", "data_keys", "key_wraps", "credentials", "audit", "sqlite_sequence"})
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
_COLUMNS = tuple(Credential.model_fields)
# Built once from the model's fixed field names; values are always bound parameters.
_INSERT = f"INSERT INTO credentials ({', '.join(_COLUMNS)}) VALUES (:{', :'.join(_COLUMNS)})"  # noqa: S608
_UPDATE = f"UPDATE credentials SET {', '.join(f'{c} = :{c}' for c in _COLUMNS)} WHERE id = :id"  # noqa: S608
_RESEAL = (
    "UPDATE credentials SET client_secret = :client_secret, refresh_token = :refresh_token,"
    " access_token = :access_token WHERE id = :id"
)
_SELECT_BY_ID = "SELECT * FROM credentials WHERE id = ? AND workspace = ?"
_SELECT_BY_NAME = "SELECT * FROM credentials WHERE connector_name = ? AND workspace = ?"
_ABANDONED: list[sqlite3.Connection] = []  # inherited over fork(): the child must never close them
_STORES: weakref.WeakSet[_Store] = weakref.WeakSet()
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _corrupt_hint(path: Path) -> str:
    return (
        f"Restore {path} from a backup; do not delete it (an empty vault loses every credential)."
    )


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """Translate every sqlite3 error into the vault's own, without SQLite's text or traceback."""
    try:
        yield
    except sqlite3.Error as error:
        code = getattr(error, "sqlite_errorcode", None)
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        cls, what = _SQLITE_ERRORS.get((code or 0) & 0xFF, (VaultIOError, "failed unexpectedly"))
        hint = _corrupt_hint(path) if cls is VaultCorrupt else None
        details = {"path": str(path), "sqlite_error": name}
        raise cls(f"vault database {path} {what}", details=details, hint=hint) from None


class _Store:
    """One open vault file: its connections (per process and thread), keys and transactions."""

    def __init__(self, home: Path, ring: KeyRing, clock: Clock, busy_timeout: float) -> None:
        self.home, self.path, self.ring, self.clock = home, home / DB_NAME, ring, clock
        self.busy_timeout = busy_timeout
        self.vault_id = self.primary_kid = ""
        self.fingerprint_key = b""
        self.closed = False
        self._data_keys: dict[str, bytes] = {}
        self._reset_connections()
        _STORES.add(self)

    def _reset_connections(self) -> None:
        # After fork() the parent's connections must be neither used nor closed by the child.
        self._pid = os.getpid()
        self._guard = threading.Lock()
        self._local = threading.local()
        _ABANDONED.extend(getattr(self, "_connections", ()))
        self._connections: list[sqlite3.Connection] = []

    @classmethod
    def open(cls, home: Path, ring: KeyRing, clock: Clock, busy_timeout: float) -> _Store:
        _ensure_dir(home)
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
        with _sqlite_errors(self.path):
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise VaultCorrupt(
                    f"vault database {self.path} failed its integrity check",
                    details={"path": str(self.path), "problems": problems[:5]},
                    hint=_corrupt_hint(self.path),
                )
            if not self._tables(conn):
                self._initialize(conn)
            if not _TABLES >= self._tables(conn) >= _TABLES - {"sqlite_sequence"}:
                raise VaultCorrupt(
                    f"{self.path} is not an exact-connector vault (unexpected tables)",
                    hint=_corrupt_hint(self.path),
                )
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if meta.get("schema_version") != SCHEMA_VERSION or "vault_id" not in meta:
            raise VaultCorrupt(
                f"vault {self.path} has no readable header (schema {meta.get('schema_version')!r})",
                hint=_corrupt_hint(self.path),
            )
        self.vault_id = meta["vault_id"]
        try:
            self.fingerprint_key = self.data_key(meta["fingerprint_key"])
            self.primary_kid = meta["primary_data_key"]
            self.data_key(self.primary_kid)
        except (VaultIntegrityError, VaultKeyUnknown) as error:
            culprit = error.details.get("master_key") or ", ".join(self.ring.kids)
            sealed = ", ".join(self.master_kids()) or "none"
            raise VaultKeyMismatch(
                f"the configured vault key {culprit} does not open {self.path}; "
                f"it is sealed under: {sealed}",
                details={"path": str(self.path), "configured": list(self.ring.kids)},
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
                self.vault_id = os.urandom(16).hex()
                fingerprint_kid = self.add_data_key(conn, "fingerprint")
                primary_kid = self.add_data_key(conn, "data")
                meta = {
                    "schema_version": SCHEMA_VERSION,
                    "vault_id": self.vault_id,
                    "fingerprint_key": fingerprint_kid,
                    "primary_data_key": primary_kid,
                    "created_at": repr(self.clock.now()),
                }
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    # connections and transactions

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
        with _sqlite_errors(self.path):
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
        with _sqlite_errors(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._follow_primary(conn)
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
        with _sqlite_errors(self.path):
            yield conn

    def close(self) -> None:
        self.closed = True
        if self._pid != os.getpid():
            return
        with self._guard:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # keys

    def _follow_primary(self, conn: sqlite3.Connection) -> None:
        # Another process may have rotated: never seal under a data key it has since replaced.
        row = conn.execute("SELECT value FROM meta WHERE name = 'primary_data_key'").fetchone()
        if row is not None and row[0] != self.primary_kid:
            self.data_key(row[0])
            self.primary_kid = row[0]

    def add_data_key(self, conn: sqlite3.Connection, purpose: str) -> str:
        """Create a data key wrapped under the vault's master keys; returns its kid."""
        kid, key = sealing.new_data_kid(), sealing.generate_key()
        conn.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (kid, purpose, self.clock.now()))
        in_use = {row[0] for row in conn.execute("SELECT DISTINCT master_kid FROM key_wraps")}
        for master in self.ring:
            if master is self.ring.primary or master.kid in in_use:
                self.wrap(conn, kid, key, master)
        self._data_keys[kid] = key
        return kid

    def wrap(self, conn: sqlite3.Connection, kid: str, key: bytes, master: MasterKey) -> None:
        blob = sealing.seal_blob(
            master.kid, master.key, key, vault_id=self.vault_id, record="keyring", field=kid
        )
        conn.execute("INSERT OR REPLACE INTO key_wraps VALUES (?, ?, ?)", (kid, master.kid, blob))

    def data_key(self, kid: str, subject: Mapping[str, str] | None = None) -> bytes:
        """A data key by kid: from memory, else unwrapped from the vault (read once)."""
        key = self._data_keys.get(kid)
        if key is not None:
            return key
        subject = subject or {"data_key": kid}
        with self.read() as conn:
            known = conn.execute("SELECT 1 FROM data_keys WHERE kid = ?", (kid,)).fetchone()
            wraps = conn.execute(
                "SELECT master_kid, blob FROM key_wraps WHERE data_kid = ?", (kid,)
            ).fetchall()
        if known is None:
            raise VaultCorrupt(
                f"{sealing._where(subject)} names data key {kid}, which this vault never issued",
                details={**subject, "kid": kid},
                hint=_corrupt_hint(self.path),
            )
        # Every configured key that wraps this data key must unwrap it: a wrong key fails loudly.
        unwrapped = {
            sealing.open_blob(
                blob,
                _constant(master.key),
                vault_id=self.vault_id,
                record="keyring",
                field=kid,
                subject={"data_key": kid, "master_key": master.kid},
            )
            for master_kid, blob in wraps
            if (master := self.ring.get(master_kid)) is not None
        }
        if len(unwrapped) > 1:
            raise VaultIntegrityError(f"master keys disagree about data key {kid}", details=subject)
        if unwrapped:
            key = unwrapped.pop()
            self._data_keys[kid] = key
            return key
        sealed = ", ".join(sorted(row[0] for row in wraps)) or "no key"
        raise VaultKeyUnknown(
            f"data key {kid} is sealed under master key {sealed}, which this process does not hold",
            details={**subject, "kid": kid, "master_keys": sealed},
        )

    def forget(self, kid: str) -> None:
        self._data_keys.pop(kid, None)

    def master_kids(self) -> list[str]:
        with self.read() as conn:
            rows = conn.execute("SELECT DISTINCT master_kid FROM key_wraps ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def seal(self, record: str, field: str, value: SecretStr) -> bytes:
        return sealing.seal_blob(
            self.primary_kid,
            self.data_key(self.primary_kid),
            value.get_secret_value().encode("utf-8"),
            vault_id=self.vault_id,
            record=record,
            field=field,
        )

    def unseal(self, record: str, field: str, blob: object) -> SecretStr:
        subject = {"credential_id": record, "field": field}
        if not isinstance(blob, bytes):
            raise VaultCorrupt(f"credential {record} field {field} is not a blob", details=subject)
        plain = sealing.open_blob(
            blob,
            lambda kid: self.data_key(kid, subject),
            vault_id=self.vault_id,
            record=record,
            field=field,
            subject=subject,
        )
        return SecretStr(plain.decode("utf-8"))


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


def _ensure_dir(path: Path) -> None:
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
    # Locks held by the parent's other threads would never be released in the child.
    global _THREAD_LOCKS_GUARD
    _THREAD_LOCKS_GUARD = threading.Lock()
    _THREAD_LOCKS.clear()
    for store in list(_STORES):
        store._reset_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# --- the vault -----------------------------------------------------------------------------------


def _input_error(error: ValidationError, prefix: str = "$") -> InputError:
    errors = [
        {
            "path": f"{prefix}.{_error_field(e)}".rstrip("."),
            "code": e["type"],
            "message": e["msg"],
        }
        for e in error.errors(include_input=False, include_url=False)
    ]
    return InputError("the credential data is invalid", errors=errors)


def _canonical_id(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


_WORKSPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def _check_workspace(workspace: str) -> str:
    if not isinstance(workspace, str) or not _WORKSPACE.fullmatch(workspace):
        message = "1-128 letters, digits or ._:@- (starting with a letter or digit)"
        problem = {"path": "$.workspace", "code": "pattern", "message": message}
        raise InputError("invalid workspace name", errors=[problem])
    return workspace


def _one_line(text: str | None, limit: int = 500) -> str | None:
    if not isinstance(text, str):
        return text
    line = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text).split())
    return (line if len(line) <= limit else line[: limit - 1] + "…") or None


def _absolute(home: str | os.PathLike[str] | None) -> Path:
    # abspath, not resolve(): resolving would follow the very symlink we must refuse.
    return Path(os.path.abspath(os.fspath(home) if home is not None else default_home()))


def _kid_usage(conn: sqlite3.Connection) -> dict[str, int]:
    """How many records have at least one blob under each data key (read from blob headers)."""
    usage: dict[str, int] = {}
    for row in conn.execute("SELECT client_secret, refresh_token, access_token FROM credentials"):
        kids: set[str] = set()
        for blob in row:
            if isinstance(blob, bytes):
                with contextlib.suppress(VaultIntegrityError):
                    kids.add(sealing.blob_kid(blob, subject={}))
        for kid in kids:
            usage[kid] = usage.get(kid, 0) + 1
    return usage


def _constant(key: bytes) -> Callable[[str], bytes]:
    return lambda _kid: key


def _primary_in(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE name = 'primary_data_key'").fetchone()
    return str(row[0]) if row else ""


class Vault:
    """One workspace's view of the vault file: every method sees only that workspace.

    Thread-safe and multi-process safe. Key rotation, :meth:`verify` with ``all_workspaces`` and
    :meth:`key_info` act on the whole file. Views made by :meth:`in_workspace` share one
    connection pool, so :meth:`close` on any of them closes them all.
    """

    home: Path
    workspace: str

    def __init__(self, store: _Store, workspace: str) -> None:
        self._store = store
        self.home = store.home
        self.workspace = _check_workspace(workspace)

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        workspace: str = "default",
        keys: KeyRing | None = None,
        clock: Clock | None = None,
        busy_timeout: float = 5.0,
    ) -> Vault:
        """Open the vault at ``home`` (created on first use); keys default to env, then key file."""
        _check_workspace(workspace)
        path = _absolute(home)
        if os.path.lexists(path):
            sealing.check_private_dir(path)
        ring = keys if keys is not None else KeyRing.load(path)
        return cls(_Store.open(path, ring, clock or SystemClock(), busy_timeout), workspace)

    @staticmethod
    def init(home: str | os.PathLike[str] | None = None) -> Path:
        """Create the vault directory and a key file if there is none; returns the key file path."""
        path = _absolute(home)
        _ensure_dir(path)
        key_path = path / KEY_FILE_NAME
        for stale in path.glob(f".{KEY_FILE_NAME}.*.tmp"):  # left by a crash mid-write
            stale.unlink()
        if sealing.check_private_file(key_path, "key file"):
            return key_path
        if os.path.lexists(path / DB_NAME):
            raise VaultKeyError(
                f"a vault exists at {path / DB_NAME} but its key file is missing",
                hint=f"Set {sealing.KEY_ENV} to its key, or restore {key_path} from a backup.",
            )
        text = KeyRing.from_bytes(sealing.generate_key()).to_text()
        sealing.write_private_file(
            key_path,
            text.encode("ascii"),
            replace=False,
            before_replace=lambda: crash_point("keyfile.before_replace"),
        )
        return key_path

    def in_workspace(self, workspace: str) -> Vault:
        """The same vault file seen from another workspace."""
        return Vault(self._store, workspace)

    # --- records ----------------------------------------------------------------------------

    def begin(
        self,
        *,
        connector_name: str,
        auth_type: str,
        server_url: str,
        client_id: str,
        client_secret: SecretStr,
        redirect_uri: str | None = None,
        refresh_token: SecretStr | None = None,
    ) -> Credential:
        """Store a new credential with status ``pending``; CredentialExists if the name is taken."""
        now = self._store.clock.now()
        draft = self._validate(
            {
                "id": str(uuid.uuid4()),
                "workspace": self.workspace,
                "connector_name": connector_name,
                "auth_type": auth_type,
                "server_url": server_url,
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "status": "pending",
                "status_reason": None,
                "allowed_divisions": (),
                "default_division": None,
                "client_secret": client_secret,
                "refresh_token": refresh_token,
                "access_token": None,
                "access_token_issued_at": None,
                "access_token_expires_at": None,
                "refresh_token_issued_at": None if refresh_token is None else now,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        required = {
            "oauth2_refresh_token": ("refresh_token", refresh_token),
            "oauth2_authorization_code": ("redirect_uri", redirect_uri),
        }
        field, value = required[draft.auth_type]
        if value is None:
            raise InputError(
                f"{draft.auth_type} needs a {field}",
                errors=[{"path": f"$.{field}", "code": "required", "message": "required"}],
            )
        if _canonical_id(connector_name) is not None:
            raise InputError(
                "a connector name must not look like a credential id",
                errors=[{"path": "$.connector_name", "code": "pattern", "message": "not a UUID"}],
            )
        with self._store.write("begin") as conn:
            if self._raw_row(conn, connector_name) is not None:
                raise CredentialExists(
                    f"a credential named {connector_name!r} already exists in workspace "
                    f"{self.workspace!r}",
                    details={"connector_name": connector_name, "workspace": self.workspace},
                )
            row = self._encode(draft)
            conn.execute(_INSERT, row)
            self._audit(
                conn, "created", draft, self._fingerprints(draft, "client_secret", "refresh_token")
            )
        return draft

    def activate(self, credential_id: str) -> Credential:
        """Mark a credential ``active`` (it must hold a refresh token)."""

        def change(current: Credential) -> dict[str, Any]:
            if current.refresh_token is None:
                raise ConfigError(
                    f"credential {current.id} has no refresh token yet",
                    hint="Finish the sign-in (authorization code exchange) before activating.",
                )
            return {"status": "active", "status_reason": None}

        return self._mutate("activate", credential_id, None, change, "activated")

    def get(self, id_or_name: str) -> Credential:
        """The credential with this id or connector name in this workspace."""
        with self._store.read() as conn:
            row = self._raw_row(conn, id_or_name)
            if row is None:
                raise self._not_found(id_or_name)
            return self._decode(row)

    def list(self) -> builtins.list[Credential]:
        """Every credential in this workspace, by name; the first unreadable one raises."""
        with self._store.read() as conn:
            rows = conn.execute(
                "SELECT * FROM credentials WHERE workspace = ? ORDER BY connector_name",
                (self.workspace,),
            ).fetchall()
            return [self._decode(row) for row in rows]

    def update_tokens(
        self,
        credential_id: str,
        *,
        expected_version: int,
        access_token: SecretStr,
        refresh_token: SecretStr,
        issued_at: float,
        expires_at: float,
        refresh_issued_at: float | None = None,
    ) -> Credential:
        """Compare-and-swap new tokens in; ConcurrentUpdate if the version moved on."""
        updates = {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "access_token_issued_at": issued_at,
            "access_token_expires_at": expires_at,
            "refresh_token_issued_at": issued_at
            if refresh_issued_at is None
            else refresh_issued_at,
        }
        return self._mutate(
            "tokens", credential_id, expected_version, lambda _: updates, "tokens_updated"
        )

    def set_status(
        self,
        credential_id: str,
        status: str,
        *,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> Credential:
        """Set the status and a reason; optionally compare-and-swap on the version.

        The reason is stored as one line of at most 500 characters (control characters become
        spaces), so a long or multi-line upstream message never blocks marking ``needs_reauth``.
        """
        updates = {"status": status, "status_reason": _one_line(reason)}
        return self._mutate("status", credential_id, expected_version, lambda _: updates, "status")

    def set_divisions(
        self, credential_id: str, allowed: Sequence[int], default: int | None
    ) -> Credential:
        """Replace the allowed divisions and the default (which must be one of them)."""
        updates = {"allowed_divisions": tuple(dict.fromkeys(allowed)), "default_division": default}
        return self._mutate("divisions", credential_id, None, lambda _: updates, "divisions")

    def remove(self, credential_id: str) -> None:
        """Delete a credential, even one that no longer decrypts."""
        with self._store.write("remove") as conn:
            row = self._raw_row(conn, credential_id)
            if row is None:
                raise self._not_found(credential_id)
            conn.execute("DELETE FROM credentials WHERE id = ?", (row["id"],))
            detail = {"connector_name": row["connector_name"]}
            self._audit_raw(conn, "removed", self.workspace, row["id"], detail)

    @contextmanager
    def lock(self, credential_id: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold the credential's refresh lock: a thread mutex plus ``flock`` on its lock file.

        The kernel drops the ``flock`` if the holder dies; waiting longer than ``timeout`` raises
        :class:`TokenRefreshInProgress`.
        """
        cid = _canonical_id(credential_id)
        if cid is None:
            raise self._not_found(credential_id)
        if sys.platform == "win32":
            raise VaultIOError("credential locks need POSIX flock, which Windows does not offer")
        path = self.home / "locks" / f"{cid}.lock"
        deadline = time.monotonic() + max(0.0, timeout)
        with _THREAD_LOCKS_GUARD:
            mutex = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
        if not mutex.acquire(timeout=max(0.0, timeout)):
            raise _refresh_in_progress(cid, timeout)
        try:
            fd = _open_lock_file(path)
            try:
                _flock_until(fd, deadline, cid, timeout)
                owner = os.getpid()
                try:
                    yield
                finally:
                    if os.getpid() == owner:  # a forked child must not unlock its parent's lock
                        fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        finally:
            mutex.release()

    def verify(self, *, all_workspaces: bool = False) -> builtins.list[VerifyResult]:
        """Decrypt every record (of this workspace, or of all); one result per record."""
        query = "SELECT * FROM credentials"
        query += (
            " ORDER BY workspace, connector_name"
            if all_workspaces
            else (" WHERE workspace = ? ORDER BY connector_name")
        )
        with self._store.read() as conn:
            rows = conn.execute(query, () if all_workspaces else (self.workspace,)).fetchall()
        results = []
        for row in rows:
            ident = {
                "id": str(row["id"]),
                "workspace": str(row["workspace"]),
                "connector_name": str(row["connector_name"]),
            }
            try:
                self._decode(row)
            except (VaultIntegrityError, VaultKeyError) as error:
                field = error.details.get("field")
                results.append(VerifyResult(**ident, ok=False, error_code=error.code, field=field))
            else:
                results.append(VerifyResult(**ident, ok=True))
        return results

    def fingerprint(self, secret: SecretStr) -> str:
        """A short HMAC fingerprint (``sha256-hmac:1a2b3c4d``), stable for this vault."""
        return sealing.fingerprint(self._store.fingerprint_key, secret.get_secret_value())

    def audit_log(self, credential_id: str | None = None) -> builtins.list[AuditEntry]:
        """Audit events of this workspace (and vault-wide key events), oldest first."""
        query = "SELECT * FROM audit WHERE (workspace = ? OR workspace IS NULL)"
        args: tuple[str, ...] = (self.workspace,)
        if credential_id is not None:
            query, args = query + " AND credential_id = ?", (*args, credential_id)
        with self._store.read() as conn:
            rows = conn.execute(query + " ORDER BY seq", args).fetchall()
        return [AuditEntry(**{**dict(row), "detail": json.loads(row["detail"])}) for row in rows]

    # --- keys -----------------------------------------------------------------------------------

    def rotate_key(self, new_key: bytes | None = None) -> RotationReport:
        """Re-encrypt every record (all workspaces) under a fresh data key, verify, retire old keys.

        Resumable: if an earlier rotation stopped half-way, this finishes it rather than starting
        another. With ``new_key`` the master key is rotated first (:meth:`rewrap`); the caller
        must store ``new_key`` where every process loads its keys from.
        """
        store = self._store
        if new_key is not None:
            self.rewrap(new_key)
        with store.write("rotate_start") as conn:
            resumed = bool(self._old_data_kids(conn))
            new_kid = store.primary_kid
            if not resumed:
                new_kid = store.add_data_key(conn, "data")
                conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'primary_data_key'", (new_kid,)
                )
        store.primary_kid = new_kid
        with store.read() as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM credentials ORDER BY rowid")]
        reencrypted = 0
        for cid in ids:
            with contextlib.suppress(VaultIntegrityError, VaultKeyError):  # reported by verify
                reencrypted += self._reseal(cid)
        failed = tuple(result for result in self.verify(all_workspaces=True) if not result.ok)
        retired: builtins.list[str] = []
        if not failed:
            with store.read() as conn:
                old = self._old_data_kids(conn)
            for kid in old:
                self.retire_key(kid)
                retired.append(kid)
        detail = {"data_key": new_kid, "reencrypted": reencrypted, "retired": retired}
        with store.write("rotate_end") as conn:
            self._audit_raw(conn, "data_key_rotated", None, None, detail)
        return RotationReport(
            kind="data",
            new_kid=new_kid,
            resumed=resumed,
            reencrypted=reencrypted,
            unchanged=len(ids) - reencrypted,
            retired=tuple(retired),
            failed=failed,
        )

    def rewrap(self, new_key: bytes | None = None, *, retire_old: bool = False) -> RotationReport:
        """Rotate the master key: wrap every data key under it; records are left untouched.

        ``new_key`` (else the key ring's primary) becomes the primary master key of this process;
        with ``retire_old`` the wraps under every other master key are then removed, so the old
        key can be destroyed.
        """
        store = self._store
        if new_key is not None:
            store.ring = store.ring.with_primary(MasterKey.from_bytes(new_key))
        master = store.ring.primary
        with store.write("rewrap") as conn:
            kids = [row[0] for row in conn.execute("SELECT kid FROM data_keys ORDER BY created_at")]
            have = {
                row[0]
                for row in conn.execute(
                    "SELECT data_kid FROM key_wraps WHERE master_kid = ?", (master.kid,)
                )
            }
            missing = [kid for kid in kids if kid not in have]
            for kid in missing:
                store.wrap(conn, kid, store.data_key(kid), master)
            self._check_wraps(conn, master, kids)
            self._audit_raw(conn, "master_key_rotated", None, None, {"master_key": master.kid})
        retired = [kid for kid in store.master_kids() if kid != master.kid] if retire_old else []
        for kid in retired:
            self.retire_key(kid)
        return RotationReport(
            kind="master",
            new_kid=master.kid,
            resumed=bool(missing) and bool(have),
            reencrypted=len(missing),
            unchanged=len(kids) - len(missing),
            retired=tuple(retired),
            failed=(),
        )

    def retire_key(self, kid: str) -> None:
        """Remove an old data or master key; refused (with the count) while anything needs it."""
        store = self._store
        with store.write("retire") as conn:
            purpose = conn.execute("SELECT purpose FROM data_keys WHERE kid = ?", (kid,)).fetchone()
            if purpose is not None:
                if purpose[0] != "data" or kid == store.primary_kid:
                    raise VaultKeyError(f"refusing to retire {kid}: it is the vault's current key")
                count = _kid_usage(conn).get(kid, 0)
                if count:
                    raise VaultKeyError(
                        f"refusing to retire data key {kid}: {count} credential(s) still use it",
                        details={"kid": kid, "count": count},
                        hint="Finish the rotation first: exact-connector vault rotate-key --resume",
                    )
                conn.execute("DELETE FROM data_keys WHERE kid = ?", (kid,))
            elif conn.execute("SELECT 1 FROM key_wraps WHERE master_kid = ?", (kid,)).fetchone():
                if kid == store.ring.primary.kid:
                    raise VaultKeyError(
                        f"refusing to retire {kid}: it is this process's primary key"
                    )
                orphans = conn.execute(
                    "SELECT count(*) FROM data_keys d WHERE NOT EXISTS (SELECT 1 FROM key_wraps w"
                    " WHERE w.data_kid = d.kid AND w.master_kid != ?)",
                    (kid,),
                ).fetchone()[0]
                if orphans:
                    raise VaultKeyError(
                        f"refusing to retire master key {kid}: {orphans} data key(s) are sealed "
                        "only under it",
                        details={"kid": kid, "count": orphans},
                        hint="Wrap them under the new key: vault rotate-key --master",
                    )
                conn.execute("DELETE FROM key_wraps WHERE master_kid = ?", (kid,))
            else:
                raise VaultKeyUnknown(f"this vault has no key {kid}", details={"kid": kid})
            self._audit_raw(conn, "key_retired", None, None, {"kid": kid})
        store.forget(kid)

    def key_info(self) -> builtins.list[KeyInfo]:
        """Every master and data key of the vault, with the number of records under each."""
        store = self._store
        with store.read() as conn:
            data = conn.execute("SELECT kid, purpose FROM data_keys ORDER BY created_at").fetchall()
            masters = [row[0] for row in conn.execute("SELECT DISTINCT master_kid FROM key_wraps")]
            usage, primary = _kid_usage(conn), _primary_in(conn)
        infos = [
            KeyInfo(
                kid=kid,
                kind="master",
                primary=kid == store.ring.primary.kid,
                available=store.ring.get(kid) is not None,
            )
            for kid in sorted(masters)
        ]
        for kid, purpose in data:
            try:
                available = bool(store.data_key(kid))
            except (VaultIntegrityError, VaultKeyError):
                available = False
            kind: Literal["data", "fingerprint"] = "data" if purpose == "data" else "fingerprint"
            records = usage.get(kid, 0) if kind == "data" else None
            infos.append(
                KeyInfo(
                    kid=kid, kind=kind, primary=kid == primary, available=available, records=records
                )
            )
        return infos

    def close(self) -> None:
        """Close the vault's connections (every view of this file)."""
        self._store.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Vault(home={str(self.home)!r}, workspace={self.workspace!r})"

    # --- internals ------------------------------------------------------------------------------

    def _raw_row(self, conn: sqlite3.Connection, key: str) -> sqlite3.Row | None:
        cid = _canonical_id(key) if isinstance(key, str) else None
        query = _SELECT_BY_ID if cid is not None else _SELECT_BY_NAME
        row: sqlite3.Row | None = conn.execute(query, (cid or key, self.workspace)).fetchone()
        return row

    def _not_found(self, key: object) -> CredentialNotFound:
        shown = str(key)[:100]
        return CredentialNotFound(
            f"no credential {shown!r} in workspace {self.workspace!r}",
            details={"credential": shown, "workspace": self.workspace},
        )

    def _decode(self, row: sqlite3.Row) -> Credential:
        cid = str(row["id"])
        values = {name: row[name] for name in _COLUMNS if name not in SECRET_FIELDS}
        for field in SECRET_FIELDS:
            blob = row[field]
            values[field] = None if blob is None else self._store.unseal(cid, field, blob)
        try:
            values["allowed_divisions"] = tuple(json.loads(row["allowed_divisions"]))
            return Credential.model_validate(values)
        except (TypeError, ValueError) as error:
            errors = error.errors(include_input=False) if isinstance(error, ValidationError) else []
            field = (_error_field(errors[0]) if errors else "allowed_divisions") or "record"
            raise VaultCorrupt(
                f"credential {cid}: stored field {field} is invalid",
                details={"credential_id": cid, "field": field},
                hint=_corrupt_hint(self._store.path),
            ) from None

    def _encode(self, credential: Credential) -> dict[str, Any]:
        # Secrets go through get_secret_value(): model_dump_json() would store "**********".
        row = credential.model_dump(exclude=set(SECRET_FIELDS))
        row["allowed_divisions"] = json.dumps(list(credential.allowed_divisions))
        for field in SECRET_FIELDS:
            secret = getattr(credential, field)
            row[field] = None if secret is None else self._store.seal(credential.id, field, secret)
        return row

    @staticmethod
    def _validate(values: Mapping[str, Any]) -> Credential:
        try:
            return Credential.model_validate(values)
        except ValidationError as error:
            raise _input_error(error) from None

    def _mutate(
        self,
        op: str,
        credential_id: str,
        expected_version: int | None,
        change: Any,
        event: str,
    ) -> Credential:
        if expected_version is not None and (
            not isinstance(expected_version, int) or isinstance(expected_version, bool)
        ):
            raise InputError(
                "expected_version must be an integer",
                errors=[{"path": "$.expected_version", "code": "int_type", "message": "integer"}],
            )
        with self._store.write(op) as conn:
            row = self._raw_row(conn, credential_id)
            if row is None:
                raise self._not_found(credential_id)
            if expected_version is not None and row["version"] != expected_version:
                raise ConcurrentUpdate(
                    f"credential {row['id']} is at version {row['version']}, "
                    f"not {expected_version}",
                    details={
                        "credential_id": row["id"],
                        "expected_version": expected_version,
                        "current_version": row["version"],
                    },
                )
            current = self._decode(row)
            updates = change(current)
            new = self._validate(
                {
                    **current.model_dump(),
                    **updates,
                    "version": current.version + 1,
                    "updated_at": self._store.clock.now(),
                }
            )
            encoded = self._encode(new)
            conn.execute(_UPDATE, encoded)
            detail: dict[str, Any] = {"version": new.version}
            if event == "tokens_updated":
                detail.update(self._fingerprints(new, "refresh_token", "access_token"))
            elif event in ("status", "activated"):
                detail.update(status=new.status, previous=current.status, reason=new.status_reason)
            elif event == "divisions":
                detail.update(allowed=list(new.allowed_divisions), default=new.default_division)
            self._audit(conn, event, new, detail)
        return new

    def _fingerprints(self, credential: Credential, *fields: str) -> dict[str, str]:
        return {
            field: self.fingerprint(secret)
            for field in fields
            if (secret := getattr(credential, field)) is not None
        }

    def _audit(
        self, conn: sqlite3.Connection, event: str, credential: Credential, detail: dict[str, Any]
    ) -> None:
        detail = {"connector_name": credential.connector_name, **detail}
        self._audit_raw(conn, event, credential.workspace, credential.id, detail)

    def _audit_raw(
        self,
        conn: sqlite3.Connection,
        event: str,
        workspace: str | None,
        credential_id: str | None,
        detail: Mapping[str, Any],
    ) -> None:
        conn.execute(
            "INSERT INTO audit (at, workspace, credential_id, event, detail) VALUES (?,?,?,?,?)",
            (self._store.clock.now(), workspace, credential_id, event, json.dumps(detail)),
        )

    def _old_data_kids(self, conn: sqlite3.Connection) -> builtins.list[str]:
        rows = conn.execute(
            "SELECT kid FROM data_keys WHERE purpose = 'data' AND kid != ?", (_primary_in(conn),)
        ).fetchall()
        return [row[0] for row in rows]

    def _reseal(self, cid: str) -> bool:
        store = self._store
        with store.write("rotate") as conn:
            row = conn.execute(
                "SELECT client_secret, refresh_token, access_token FROM credentials WHERE id = ?",
                (cid,),
            ).fetchone()
            if row is None:
                return False
            blobs = {field: row[field] for field in SECRET_FIELDS if row[field] is not None}
            if all(
                isinstance(blob, bytes)
                and sealing.blob_kid(blob, subject={"credential_id": cid, "field": field})
                == store.primary_kid
                for field, blob in blobs.items()
            ):
                return False
            fresh = {
                field: store.seal(cid, field, store.unseal(cid, field, row[field]))
                if row[field] is not None
                else None
                for field in SECRET_FIELDS
            }
            conn.execute(_RESEAL, {**fresh, "id": cid})
            return True

    def _check_wraps(
        self, conn: sqlite3.Connection, master: MasterKey, kids: Sequence[str]
    ) -> None:
        store = self._store
        for kid in kids:
            blob = conn.execute(
                "SELECT blob FROM key_wraps WHERE data_kid = ? AND master_kid = ?",
                (kid, master.kid),
            ).fetchone()[0]
            try:
                key = sealing.open_blob(
                    blob,
                    _constant(master.key),
                    vault_id=store.vault_id,
                    record="keyring",
                    field=kid,
                    subject={"data_key": kid, "master_key": master.kid},
                )
            except VaultIntegrityError:
                raise VaultKeyMismatch(
                    f"master key {master.kid} does not match this vault's wrap of {kid}"
                ) from None
            if key != store.data_key(kid):
                raise VaultKeyMismatch(f"master key {master.kid} unwraps {kid} to another key")


def _refresh_in_progress(cid: str, timeout: float) -> TokenRefreshInProgress:
    return TokenRefreshInProgress(
        f"credential {cid} is locked by another worker (waited {timeout:g} s)",
        details={"credential_id": cid, "timeout": timeout},
    )


def _open_lock_file(path: Path) -> int:
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.parent, 0o700)
        sealing.check_private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | PRIVATE_OPEN, 0o600)
    except OSError as error:
        raise VaultPermissions(f"cannot open lock file {path}: {error.strerror}") from None
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        os.close(fd)
        raise VaultPermissions(f"lock file {path} is not a private file of this user")
    return fd


def _flock_until(fd: int, deadline: float, cid: str, timeout: float) -> None:
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as error:
            raise VaultIOError(f"cannot lock credential {cid}: {error.strerror}") from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _refresh_in_progress(cid, timeout)
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)
