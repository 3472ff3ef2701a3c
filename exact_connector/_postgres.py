"""PostgreSQL plumbing shared by the vault's PostgreSQL store and the rate governor's.

Both keep their tables in one schema (``exact_connector`` unless told otherwise), created and
migrated by :func:`migrate`: numbered steps in :data:`MIGRATIONS`, each applied once and recorded
in ``schema_migrations``, in one transaction under a transaction-scoped advisory lock, so workers
that start together never race and a current schema is left untouched. A schema newer than this
code is refused rather than used.

:class:`Pool` is a psycopg connection pool per process: a forked child never uses (nor closes) its
parent's connections and opens its own on first use. Connections run in autocommit mode with the
schema on their ``search_path``; every transaction is explicit. Needs the ``postgres`` extra.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from exact_connector.exceptions import ConfigError

__all__ = [
    "DEFAULT_SCHEMA",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Connection",
    "Pool",
    "SchemaTooNew",
    "describe_url",
    "migrate",
]

DEFAULT_SCHEMA = "exact_connector"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIGRATE_LOCK = 0x65786164  # advisory lock key of schema migration

Connection = psycopg.Connection[dict[str, Any]]

#: Schema versions, applied in order, each exactly once (recorded in ``schema_migrations``).
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE data_keys (
            kid TEXT PRIMARY KEY, purpose TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
        CREATE TABLE key_wraps (
            data_kid TEXT NOT NULL REFERENCES data_keys(kid) ON DELETE CASCADE,
            master_kid TEXT NOT NULL, blob BYTEA NOT NULL, PRIMARY KEY (data_kid, master_kid));
        CREATE TABLE credentials (
            seq BIGSERIAL UNIQUE, id TEXT PRIMARY KEY, workspace TEXT NOT NULL,
            connector_name TEXT NOT NULL, auth_type TEXT NOT NULL, server_url TEXT NOT NULL,
            client_id TEXT NOT NULL, redirect_uri TEXT, status TEXT NOT NULL, status_reason TEXT,
            allowed_divisions TEXT NOT NULL, default_division BIGINT, client_secret BYTEA,
            refresh_token BYTEA, access_token BYTEA, access_token_issued_at DOUBLE PRECISION,
            access_token_expires_at DOUBLE PRECISION, refresh_token_issued_at DOUBLE PRECISION,
            version BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL, UNIQUE (workspace, connector_name));
        CREATE TABLE audit (
            seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, workspace TEXT,
            credential_id TEXT, event TEXT NOT NULL, detail TEXT NOT NULL);
        CREATE TABLE sign_ins (
            credential_id TEXT PRIMARY KEY REFERENCES credentials(id) ON DELETE CASCADE,
            state_digest TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL);
        CREATE TABLE leases (
            credential_id TEXT PRIMARY KEY, holder TEXT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL);
        """,
    ),
    (
        2,
        """
        CREATE TABLE rate_windows (
            client_id TEXT NOT NULL, division BIGINT NOT NULL, kind TEXT NOT NULL,
            end_at DOUBLE PRECISION NOT NULL, used INTEGER NOT NULL, carry INTEGER NOT NULL,
            lim INTEGER NOT NULL, PRIMARY KEY (client_id, division, kind));
        CREATE TABLE rate_errors (
            client_id TEXT NOT NULL, division BIGINT NOT NULL, endpoint TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL);
        CREATE INDEX rate_errors_by_endpoint ON rate_errors (client_id, division, endpoint, at);
        """,
    ),
    (
        3,
        """
        CREATE TABLE trigger_checkpoints (
            key TEXT PRIMARY KEY,
            credential_id TEXT NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
            version BIGINT NOT NULL, state TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaTooNew(Exception):
    """The schema was migrated by a newer exact-connector than this one."""

    def __init__(self, found: int) -> None:
        super().__init__(f"schema version {found} is newer than {SCHEMA_VERSION}")
        self.found = found


def describe_url(url: str) -> str:
    """``postgresql://user@host:port/db`` without the password or options, for messages."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql database (unparsable URL)"
    if _misread(parts):
        return "postgresql database (unparsable URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{parts.get('dbname') or ''}"


def check_url(url: str) -> str:
    """``url`` if libpq can parse it, else ConfigError; never with the parser's text, which
    quotes the offending part (a password with an unencoded ``%``, say) verbatim."""
    try:
        misread = _misread(conninfo_to_dict(url))
    except psycopg.Error:
        misread = True
    if misread:
        raise ConfigError(
            "the PostgreSQL database URL cannot be parsed",
            hint="Percent-encode special characters in the user and password"
            " (% as %25, @ as %40, / as %2F, a space as %20).",
        ) from None
    return url


def _misread(parts: Mapping[str, object]) -> bool:
    """Whether libpq parsed the URL into parts a password was split into: an unencoded ``/``
    in ``user:pa/ss@host`` ends the authority early, so the user becomes the host, the
    password's start the port, and its rest (``ss@host/db``) the database name."""
    port, dbname = str(parts.get("port") or ""), str(parts.get("dbname") or "")
    return not all(p.isdigit() for p in port.split(",") if p) or "@" in dbname


def check_schema_name(schema: str) -> str:
    """``schema`` if it is a plain lower-case identifier, else ConfigError."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"schema name {schema[:70]!r} is not a plain lower-case SQL identifier",
            hint="Use letters, digits and underscores, starting with a letter (at most 63).",
        )
    return schema


def migrate(conn: Connection, schema: str) -> None:
    """Bring ``schema`` to :data:`SCHEMA_VERSION`, inside the caller's transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
    # CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists:
    # a role given only a schema its DBA provisioned could never open it.
    if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    # CREATE TABLE IF NOT EXISTS, too, checks CREATE on the schema before it looks: a role its
    # DBA migrated for and granted only reads and writes must open the schema with no DDL.
    absent = "SELECT 1 WHERE to_regclass('schema_migrations') IS NULL"
    if conn.execute(absent).fetchone() is not None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
    done = {row["version"] for row in conn.execute("SELECT version FROM schema_migrations")}
    if done and max(done) > SCHEMA_VERSION:
        raise SchemaTooNew(max(done))
    for version, script in MIGRATIONS:
        if version not in done:
            conn.execute(script.encode())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))


#: A pooled connection given back this recently is used without asking whether it still answers.
_TRUSTED_IDLE = 1.0


class Pool:
    """This process's connection pool to one schema, opened on first use."""

    def __init__(
        self, url: str, schema: str, *, timeout: float, size: int, name: str, durable: bool = True
    ) -> None:
        check_url(url)  # before any pool: a pool's workers log the driver's text, password and all
        self.url, self.schema = url, check_schema_name(schema)
        self.timeout, self.size, self.name, self.durable = timeout, size, name, durable
        self.closed = False
        self._guard = threading.Lock()
        self._pool: ConnectionPool[Connection] | None = None
        self._pid = os.getpid()
        # When each connection was last given back (see _live); forgotten with the connection.
        self._returned: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    def _get(self) -> ConnectionPool[Connection]:
        with self._guard:
            if self.closed:
                raise PoolClosed
            if self._pool is None or self._pid != os.getpid():
                self._pid = os.getpid()  # a forked child leaves the parent's pool alone
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.size,
                    timeout=self.timeout,
                    name=self.name,
                    kwargs={
                        "row_factory": dict_row,
                        "autocommit": True,
                        "options": f"-c search_path={self.schema}",
                        "application_name": "exact-connector",
                    },
                    configure=self._configure,
                    open=True,
                )
            return self._pool

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET lock_timeout = {int(self.timeout * 1000)}")  # fail, never hang
        conn.execute("SET idle_in_transaction_session_timeout = 60000")
        if not self.durable:  # counters only: a crash may lose the last few, never corrupt them
            conn.execute("SET synchronous_commit = off")

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection of this process's pool, returned to it afterwards.

        Raises :class:`Unreachable` when the wait ran out with no connection made at all.
        """
        try:
            pool = self._get()
            conn = self._live(pool)
        except PoolTimeout:
            try:  # busy, or down? one direct attempt tells them apart
                psycopg.connect(self.url, connect_timeout=max(1, int(self.timeout))).close()
            except psycopg.Error:
                raise Unreachable from None
            raise
        try:
            yield conn
        except Exception as error:
            if connection_lost(error):  # the server went away: ask every connection before use
                self._returned.clear()
            else:
                self._returned[conn] = time.monotonic()
            raise
        else:
            self._returned[conn] = time.monotonic()
        finally:
            pool.putconn(conn)

    def _live(self, pool: ConnectionPool[Connection]) -> Connection:
        """A pooled connection that answers: one a server restart (or a failover, or an idle
        timeout) broke is discarded here, not handed out to fail the caller's transaction.

        Only a connection idle for a while is asked (one empty query): one used within
        :data:`_TRUSTED_IDLE` is taken as it is, so a busy process pays no round trip a call.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            conn = pool.getconn(timeout=max(0.001, deadline - time.monotonic()))
            if time.monotonic() - self._returned.get(conn, 0.0) < _TRUSTED_IDLE:
                return conn
            try:
                ConnectionPool.check_connection(conn)
            except psycopg.Error:
                pool.putconn(conn)  # closed now: the pool drops it and opens another
                continue
            return conn

    def close(self) -> None:
        """Close this process's pool; later use raises :class:`PoolClosed`."""
        with self._guard:
            self.closed = True
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()


class PoolClosed(Exception):
    """The pool was closed."""


class Unreachable(Exception):
    """No connection to the server could be made within the timeout."""


def connection_lost(error: Exception) -> bool:
    """Whether ``error`` says the connection to the server broke (a restart, a failover, a cut
    network) rather than anything about the request: running the step again may well succeed."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    # None: the client saw the connection close; class 08: connection; 57P: shutdown.
    state = error.sqlstate
    return state is None or state.startswith(("08", "57P"))


#: Every failure a pool user must translate into its own error.
ERRORS: tuple[type[Exception], ...] = (psycopg.Error, PoolTimeout)
#: The failures that mean "busy, try again": a full pool, a lock wait past ``lock_timeout``.
BUSY_ERRORS: tuple[type[Exception], ...] = (
    PoolTimeout,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.QueryCanceled,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)

#: Everything :meth:`Pool.connection` and a statement on it may raise besides the caller's own.
FAILURES: tuple[type[Exception], ...] = (Unreachable, PoolClosed, *ERRORS)
