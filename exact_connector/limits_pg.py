"""The rate governor on PostgreSQL: one minute, day and error budget for every worker on every host.

:class:`PostgresRateGovernor` is :class:`~exact_connector.limits.RateGovernor` with its state in
the ``rate_windows`` and ``rate_errors`` tables of the connector's schema (migrated by
:func:`exact_connector._postgres.migrate`, the vault's schema). The budgeting logic is the
parent's; only the storage hooks differ. There is no global lock: a reservation or reconciliation
is one transaction that first takes a transaction-scoped advisory lock keyed by its
``(client id, division)``, so calls for different divisions or apps never wait for each other, and
the lock goes with COMMIT or ROLLBACK (never left on a pooled connection). Errors are appended
without a lock and pruned per endpoint. Threads of one process run in parallel on the pool.
Commits do not wait for the disk (``synchronous_commit = off``, as the SQLite state file runs
``synchronous=NORMAL``): the state is only counters, and a server crash loses at most the last few.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from exact_connector import _postgres
from exact_connector._rate_windows import Window
from exact_connector.clock import Clock
from exact_connector.exceptions import ExactConnectorError, SystemError_, TransientError
from exact_connector.limits import ERROR_WINDOW, RateGovernor

__all__ = ["PostgresRateGovernor"]

_SAVE = """
INSERT INTO rate_windows VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (client_id, division, kind) DO UPDATE SET end_at = EXCLUDED.end_at,
    used = EXCLUDED.used, carry = EXCLUDED.carry, lim = EXCLUDED.lim
"""


class PostgresRateGovernor(RateGovernor):
    """A :class:`RateGovernor` whose budgets live in PostgreSQL (``url``, ``schema``)."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = _postgres.DEFAULT_SCHEMA,
        clock: Clock | None = None,
        timeout: float = 30.0,
        pool_size: int = 8,
        **limits: int,
    ) -> None:
        super().__init__(None, clock=clock, **limits)
        self._url, self._schema = url, _postgres.check_schema_name(schema)
        self._timeout, self._pool_size = timeout, pool_size
        self._where = f"{_postgres.describe_url(url)} (schema {schema})"
        self._pool_guard = threading.Lock()
        self._pool: _postgres.Pool | None = None

    def _connections(self) -> _postgres.Pool:
        with self._pool_guard:
            if self._pool is None:
                pool = _postgres.Pool(
                    self._url,
                    self._schema,
                    timeout=self._timeout,
                    size=self._pool_size,
                    name="exact-connector-governor",
                    durable=False,
                )
                try:
                    with pool.connection() as conn, conn.transaction():
                        _postgres.migrate(conn, self._schema)
                except BaseException:
                    pool.close()  # else its workers and connection outlive this failed call
                    raise
                self._pool = pool
            return self._pool

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        try:
            with self._connections().connection() as conn, conn.transaction():
                yield conn
        except _postgres.SchemaTooNew:
            raise SystemError_(
                f"The rate-limit state ({self._where}) was migrated by a newer exact-connector.",
                hint="Upgrade exact-connector on this worker.",
            ) from None
        except Exception as error:
            if not isinstance(error, _postgres.FAILURES):
                raise  # the governor's own errors (RateLimited, ...) pass unchanged
            raise self._pg_error(error) from None

    def _pg_error(self, error: Exception) -> ExactConnectorError:
        if isinstance(error, _postgres.Unreachable):
            return TransientError(f"The rate-limit state ({self._where}) cannot be reached.")
        if _postgres.connection_lost(error):
            return TransientError(
                f"The rate-limit state ({self._where}) lost its connection to the server."
            )
        if isinstance(error, _postgres.BUSY_ERRORS):
            return TransientError(f"The rate-limit state ({self._where}) stayed busy.")
        return SystemError_(
            f"The rate-limit state ({self._where}) could not be used: {type(error).__name__}.",
            hint="It holds only call counters: check the database and run the step again.",
        )

    def _record_error(self, db: Any, key: tuple[str, int, str], now: float) -> None:
        db.execute("INSERT INTO rate_errors VALUES (%s, %s, %s, %s)", (*key, now))
        db.execute(
            "DELETE FROM rate_errors WHERE client_id = %s AND division = %s AND endpoint = %s"
            " AND at <= %s",
            (*key, now - ERROR_WINDOW),
        )

    def _delete_errors(self, db: Any, client_id: str, endpoint: str | None) -> int:
        query, args = "DELETE FROM rate_errors WHERE client_id = %s", [client_id]
        if endpoint is not None:
            query, args = f"{query} AND endpoint = %s", [client_id, endpoint]
        return int(db.execute(query, args).rowcount)

    def _error_times(self, db: Any, key: tuple[str, int, str], since: float) -> list[float]:
        rows = db.execute(
            "SELECT at FROM rate_errors WHERE client_id = %s AND division = %s AND endpoint = %s"
            " AND at > %s ORDER BY at",
            (*key, since),
        )
        return [float(row["at"]) for row in rows]

    def _lock_division(self, db: Any, client_id: str, division: int) -> None:
        # Taken again by the same transaction it is a no-op (advisory locks are re-entrant).
        key = f"{client_id}:{division}"
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))

    def _window_rows(self, db: Any, client_id: str, division: int) -> list[tuple[Any, ...]]:
        # Every read-modify-write of a division's windows reaches here: lock that division only.
        self._lock_division(db, client_id, division)
        rows = db.execute(
            "SELECT kind, end_at, used, carry, lim FROM rate_windows"
            " WHERE client_id = %s AND division = %s",
            (client_id, division),
        )
        return [(r["kind"], r["end_at"], r["used"], r["carry"], r["lim"]) for r in rows]

    def _save(self, db: Any, client_id: str, division: int, windows: dict[str, Window]) -> None:
        with db.cursor() as cursor:
            cursor.executemany(
                _SAVE,
                [
                    (client_id, division, kind, w.end, w.used, w.carry, w.limit)
                    for kind, w in windows.items()
                ],
            )

    def close(self) -> None:
        """Close this process's pool; the next call opens a new one. The pool is closed even when
        writing what was observed fails (the database may be what is gone)."""
        try:
            super().close()
        finally:
            with self._pool_guard:
                pool, self._pool = self._pool, None
            if pool is not None:
                pool.close()
