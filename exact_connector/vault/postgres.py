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
from collections.abc import Iterator, Mapping
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
from exact_connector.vault.store import Initializer, Row, corrupt_hint, crash_point

__all__ = ["PostgresSession", "PostgresStore"]

_WRITE_LOCK = 0x65786163  # advisory lock key of vault writes ("exac")

_CREDENTIAL_COLUMNS = (
    "id",
    "workspace",
    "connector_name",
    "auth_type",
    "server_url",
    "client_id",
    "redirect_uri",
    "status",
    "allowed_divisions",
    "default_division",
    "client_secret",
    "refresh_token",
    "access_token",
    "access_token_issued_at",
    "access_token_expires_at",
    "refresh_token_issued_at",
    "version",
    "created_at",
    "updated_at",
    "status_reason",
)
_SELECT = f"SELECT {', '.join(_CREDENTIAL_COLUMNS)} FROM credentials"  # noqa: S608 (fixed names)
_INSERT = (
    f"INSERT INTO credentials ({', '.join(_CREDENTIAL_COLUMNS)})"  # noqa: S608 (fixed names)
    f" VALUES ({', '.join(f'%({c})s' for c in _CREDENTIAL_COLUMNS)})"
)
_SWAP = (
    f"UPDATE credentials SET {', '.join(f'{c} = %({c})s' for c in _CREDENTIAL_COLUMNS)}"  # noqa: S608
    " WHERE id = %(id)s AND version = %(expected_version)s"
)
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


def _translated(where: str, error: Exception) -> ExactConnectorError:
    """The vault's error for a driver failure: what happened, never the driver's text."""
    details = {"database": where, "postgres_error": type(error).__name__}
    if isinstance(error, PoolTimeout | pg_errors.LockNotAvailable | pg_errors.QueryCanceled):
        return VaultBusy(f"vault database {where} stayed busy past the timeout", details=details)
    if isinstance(error, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return VaultBusy(f"vault database {where} refused a conflicting write", details=details)
    if isinstance(error, pg_errors.InsufficientPrivilege | pg_errors.InvalidPassword):
        return VaultPermissions(f"vault database {where} refused this user", details=details)
    if isinstance(error, psycopg.IntegrityError):
        hint = corrupt_hint(where)
        return VaultCorrupt(f"vault database {where} violates its own constraints", hint=hint)
    if isinstance(error, psycopg.ProgrammingError):
        hint = corrupt_hint(where)
        msg = f"vault database {where} does not have the expected structure"
        return VaultCorrupt(msg, details=details, hint=hint)
    return VaultIOError(f"vault database {where} could not be used", details=details)


class PostgresSession:
    """One transaction on the vault schema: rows in, rows out (see ``StoreSession``)."""

    def __init__(self, conn: _postgres.Connection) -> None:
        self._conn = conn

    def _one(self, query: str, *args: Any) -> dict[str, Any] | None:
        return self._conn.execute(query, args).fetchone()

    def _all(self, query: str, *args: Any) -> list[Row]:
        return list(self._conn.execute(query, args).fetchall())

    def _column(self, query: str, *args: Any) -> list[Any]:
        return [next(iter(row.values())) for row in self._conn.execute(query, args)]

    def credential(self, credential_id: str, workspace: str | None = None) -> Row | None:
        if workspace is None:
            return self._one(f"{_SELECT} WHERE id = %s", credential_id)
        return self._one(f"{_SELECT} WHERE id = %s AND workspace = %s", credential_id, workspace)

    def credential_by_name(self, workspace: str, connector_name: str) -> Row | None:
        query = f"{_SELECT} WHERE connector_name = %s AND workspace = %s"
        return self._one(query, connector_name, workspace)

    def credentials(self, workspace: str | None) -> list[Row]:
        if workspace is None:
            return self._all(f"{_SELECT} ORDER BY workspace, connector_name")
        return self._all(f"{_SELECT} WHERE workspace = %s ORDER BY connector_name", workspace)

    def credential_ids(self) -> list[str]:
        return self._column("SELECT id FROM credentials ORDER BY seq")

    def insert_credential(self, row: Row) -> None:
        self._conn.execute(_INSERT, dict(row))

    def swap_credential(self, row: Row, expected_version: int) -> bool:
        cursor = self._conn.execute(_SWAP, {**row, "expected_version": expected_version})
        return cursor.rowcount == 1

    def reseal_credential(self, credential_id: str, blobs: Mapping[str, bytes | None]) -> None:
        query = (
            "UPDATE credentials SET client_secret = %(client_secret)s,"
            " refresh_token = %(refresh_token)s, access_token = %(access_token)s WHERE id = %(id)s"
        )
        self._conn.execute(query, {**blobs, "id": credential_id})

    def delete_credential(self, credential_id: str) -> None:
        self._conn.execute("DELETE FROM credentials WHERE id = %s", (credential_id,))

    def checkpoint(self, key: str) -> Row | None:
        return self._one("SELECT version, state FROM trigger_checkpoints WHERE key = %s", key)

    def swap_checkpoint(
        self, key: str, credential_id: str, expected_version: int, state: str, at: float
    ) -> bool:
        if expected_version == 0:
            cursor = self._conn.execute(
                "INSERT INTO trigger_checkpoints SELECT %s, id, 1, %s, %s FROM credentials"
                " WHERE id = %s ON CONFLICT (key) DO NOTHING",
                (key, state, at, credential_id),
            )
        else:
            cursor = self._conn.execute(
                "UPDATE trigger_checkpoints SET version = version + 1, state = %s,"
                " updated_at = %s WHERE key = %s AND credential_id = %s AND version = %s",
                (state, at, key, credential_id, expected_version),
            )
        return cursor.rowcount == 1

    def delete_checkpoint(self, key: str) -> bool:
        cursor = self._conn.execute("DELETE FROM trigger_checkpoints WHERE key = %s", (key,))
        return cursor.rowcount == 1

    def put_sign_in(self, credential_id: str, state_digest: str, expires_at: float) -> None:
        query = (
            "INSERT INTO sign_ins VALUES (%s, %s, %s) ON CONFLICT (credential_id) DO UPDATE"
            " SET state_digest = EXCLUDED.state_digest, expires_at = EXCLUDED.expires_at"
        )
        self._conn.execute(query, (credential_id, state_digest, expires_at))

    def sign_in(self, credential_id: str) -> Row | None:
        query = "SELECT state_digest, expires_at FROM sign_ins WHERE credential_id = %s"
        return self._one(query, credential_id)

    def delete_sign_in(self, credential_id: str) -> None:
        self._conn.execute("DELETE FROM sign_ins WHERE credential_id = %s", (credential_id,))

    def append_audit(
        self,
        at: float,
        workspace: str | None,
        credential_id: str | None,
        event: str,
        detail: str,
    ) -> None:
        self._conn.execute(
            "INSERT INTO audit (at, workspace, credential_id, event, detail)"
            " VALUES (%s, %s, %s, %s, %s)",
            (at, workspace, credential_id, event, detail),
        )

    def audit(self, workspace: str, credential_id: str | None) -> list[Row]:
        query = (
            "SELECT seq, at, workspace, credential_id, event, detail FROM audit"
            " WHERE (workspace = %s OR workspace IS NULL)"
        )
        if credential_id is None:
            return self._all(query + " ORDER BY seq", workspace)
        return self._all(query + " AND credential_id = %s ORDER BY seq", workspace, credential_id)

    def header(self) -> dict[str, str]:
        rows = self._conn.execute("SELECT name, value FROM meta")
        return {str(row["name"]): str(row["value"]) for row in rows}

    def set_header(self, name: str, value: str) -> None:
        query = (
            "INSERT INTO meta VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
        )
        self._conn.execute(query, (name, value))

    def insert_data_key(self, kid: str, purpose: str, created_at: float) -> None:
        query = "INSERT INTO data_keys VALUES (%s, %s, %s)"
        self._conn.execute(query, (kid, purpose, created_at))

    def data_key_purpose(self, kid: str) -> str | None:
        found = self._column("SELECT purpose FROM data_keys WHERE kid = %s", kid)
        return str(found[0]) if found else None

    def data_keys(self) -> list[Row]:
        return self._all("SELECT kid, purpose FROM data_keys ORDER BY created_at, kid")

    def delete_data_key(self, kid: str) -> None:
        self._conn.execute("DELETE FROM data_keys WHERE kid = %s", (kid,))  # wraps cascade

    def put_wrap(self, data_kid: str, master_kid: str, blob: bytes) -> None:
        query = (
            "INSERT INTO key_wraps VALUES (%s, %s, %s)"
            " ON CONFLICT (data_kid, master_kid) DO UPDATE SET blob = EXCLUDED.blob"
        )
        self._conn.execute(query, (data_kid, master_kid, blob))

    def wraps(self, data_kid: str) -> dict[str, bytes]:
        query = "SELECT master_kid, blob FROM key_wraps WHERE data_kid = %s"
        return {str(r["master_kid"]): bytes(r["blob"]) for r in self._all(query, data_kid)}

    def master_kids(self) -> list[str]:
        return self._column("SELECT DISTINCT master_kid FROM key_wraps ORDER BY 1")

    def delete_wraps(self, master_kid: str) -> None:
        self._conn.execute("DELETE FROM key_wraps WHERE master_kid = %s", (master_kid,))


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
                session = PostgresSession(conn)
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
    def write(self, op: str) -> Iterator[PostgresSession]:
        """One transaction holding the write lock until COMMIT: exclusive across machines."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield PostgresSession(conn)
            crash_point(f"{op}.before_commit")
        crash_point(f"{op}.after_commit")

    @contextmanager
    def read(self) -> Iterator[PostgresSession]:
        """A read-only transaction (one snapshot for the whole block)."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PostgresSession(conn)

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
