"""The vault's PostgreSQL backend: one schema shared by every worker on every machine.

Selected by ``EXACT_CONNECTOR_DATABASE_URL=postgresql://...`` (or ``Vault.open(database_url=...)``);
needs the ``postgres`` extra (psycopg 3 and its pool). Records arrive sealed, exactly as in the
SQLite file: the database only ever holds opaque blobs, and the AAD binds the same identity.

- **Schema**: created and migrated at open by :func:`exact_connector._postgres.migrate` (numbered
  steps, each applied once); a new vault's header is written in that same transaction.
- **Writes**: every :meth:`PostgresStore.write` is one transaction that first takes a
  transaction-scoped advisory lock (released by COMMIT or ROLLBACK, never left on a pooled
  connection), so a read-modify-write is exact across machines as ``BEGIN IMMEDIATE`` is in SQLite.
- **Refresh lease**: a row in ``leases`` with a holder token and an expiry on the *server's* clock
  (no skew between hosts). It is taken by an upsert that only overwrites an expired row, renewed by
  a heartbeat thread while held, and deleted on release; a holder killed with ``SIGKILL`` stops
  renewing, so its lease expires after ``lease_ttl`` seconds. No session-bound lock is held, so a
  pooled connection never carries a lease away.

Every psycopg error becomes the vault's own error, without the driver's text or the password.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from exact_connector import _postgres
from exact_connector.exceptions import (
    ExactConnectorError,
    TokenRefreshInProgress,
    VaultBusy,
    VaultCorrupt,
    VaultIOError,
    VaultPermissions,
)
from exact_connector.vault.sql import POSTGRES, SQLSession
from exact_connector.vault.store import ErrorKind, Initializer, backend_error, crash_point

__all__ = ["PostgresStore"]

_WRITE_LOCK = 0x65786163  # advisory lock key of vault writes ("exac")

_TAKE_LEASE = """
INSERT INTO leases VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s))
ON CONFLICT (credential_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.expires_at <= clock_timestamp()
RETURNING holder
"""
_RENEW_LEASE = (
    "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => %s)"
    " WHERE credential_id = %s AND holder = %s"
)


#: Driver failure -> (the vault's error, what happened), first match wins; else VaultIOError.
_PG_ERRORS: tuple[tuple[tuple[type[Exception], ...], ErrorKind, str], ...] = (
    (
        (PoolTimeout, pg_errors.LockNotAvailable, pg_errors.QueryCanceled),
        VaultBusy,
        "stayed busy past the timeout",
    ),
    (
        (pg_errors.SerializationFailure, pg_errors.DeadlockDetected),
        VaultBusy,
        "refused a conflicting write",
    ),
    (
        (pg_errors.InsufficientPrivilege, pg_errors.InvalidPassword),
        VaultPermissions,
        "refused this user",
    ),
    ((psycopg.IntegrityError,), VaultCorrupt, "violates its own constraints"),
    ((psycopg.ProgrammingError,), VaultCorrupt, "does not have the expected structure"),
)


def _translated(where: str, error: Exception) -> ExactConnectorError:
    """The vault's error for a driver failure: what happened, never the driver's text."""
    if _postgres.connection_lost(error):  # the server went away mid-call: worth running again
        details = {"database": where, "postgres_error": type(error).__name__}
        return backend_error(VaultBusy, where, "lost its connection to the server", details)
    kind, what = next(
        ((kind, what) for types, kind, what in _PG_ERRORS if isinstance(error, types)),
        (VaultIOError, "could not be used"),
    )
    details = {"database": where, "postgres_error": type(error).__name__}
    return backend_error(kind, where, what, details)


class PostgresStore:
    """An open vault schema: a connection pool per process, exact transactions, leases."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = _postgres.DEFAULT_SCHEMA,
        busy_timeout: float = 5.0,
        lease_ttl: float = 30.0,
        pool_size: int = 4,
    ) -> None:
        self.where = f"{_postgres.describe_url(url)} (schema {schema})"
        #: Which database this is, whatever Vault object opened it (see ``Vault.place``).
        self.place: Hashable = ("postgres", url, schema)
        self.lease_ttl = lease_ttl
        self._pool = _postgres.Pool(
            url, schema, timeout=busy_timeout, size=pool_size, name="exact-connector-vault"
        )

    @classmethod
    def open(cls, url: str, initialize: Initializer, **options: Any) -> PostgresStore:
        """Connect, create or migrate the schema, and write a new vault's header once."""
        store = cls(url, **options)
        try:
            with store._connection() as conn, conn.transaction():
                try:
                    _postgres.migrate(conn, store._pool.schema)
                except _postgres.SchemaTooNew as error:
                    raise VaultCorrupt(
                        f"vault database {store.where} has schema {error.found}, newer than"
                        f" this connector's {_postgres.SCHEMA_VERSION}",
                        hint="Upgrade exact-connector on this worker.",
                    ) from None
                session = SQLSession(conn, POSTGRES)
                if not session.header():
                    initialize(session)
        except BaseException:
            store.close()
            raise
        return store

    @contextmanager
    def _connection(self) -> Iterator[_postgres.Connection]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except _postgres.PoolClosed:
            raise VaultIOError(f"the vault at {self.where} was closed") from None
        except _postgres.Unreachable:
            raise VaultIOError(
                f"vault database {self.where} cannot be reached",
                hint="Check that the server runs and the URL's host, port and user are right.",
            ) from None
        except _postgres.ERRORS as error:
            raise _translated(self.where, error) from None

    @contextmanager
    def write(self, op: str) -> Iterator[SQLSession]:
        """One transaction holding the write lock until COMMIT: exclusive across machines."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield SQLSession(conn, POSTGRES)
            crash_point(f"{op}.before_commit")
        crash_point(f"{op}.after_commit")

    @contextmanager
    def read(self) -> Iterator[SQLSession]:
        """A read-only transaction (one snapshot for the whole block)."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield SQLSession(conn, POSTGRES)

    def version(self) -> None:
        """Not known without a round trip to the server, which is what a read costs anyway."""
        return None

    @contextmanager
    def lease(self, credential_id: str, timeout: float) -> Iterator[None]:
        """Hold the credential's lease row, renewed by a heartbeat until released."""
        holder = f"{os.getpid()}-{secrets.token_hex(8)}"
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.005
        while not self._take(credential_id, holder):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TokenRefreshInProgress(
                    f"credential {credential_id} is being refreshed by another worker"
                    f" (waited {timeout:g} s)",
                    details={"credential_id": credential_id, "timeout": timeout},
                )
            time.sleep(min(delay, remaining))  # another machine holds it: real time, not a clock
            delay = min(delay * 2, 0.1)
        owner, stop = os.getpid(), threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(credential_id, holder, stop), daemon=True
        )
        beat.start()
        try:
            yield
        finally:
            stop.set()
            if os.getpid() == owner:  # a forked child must not release its parent's lease
                beat.join()
                with self._connection() as conn:
                    conn.execute(
                        "DELETE FROM leases WHERE credential_id = %s AND holder = %s",
                        (credential_id, holder),
                    )

    def _take(self, credential_id: str, holder: str) -> bool:
        with self._connection() as conn:
            row = conn.execute(_TAKE_LEASE, (credential_id, holder, self.lease_ttl)).fetchone()
        return row is not None

    def _heartbeat(self, credential_id: str, holder: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease_ttl / 3):
            try:
                with self._connection() as conn:
                    conn.execute(_RENEW_LEASE, (self.lease_ttl, credential_id, holder))
            except ExactConnectorError:
                continue  # the next beat retries; the lease expires if the database stays away

    def close(self) -> None:
        """Close this process's pool; later calls raise ``VaultIOError``."""
        self._pool.close()
