"""The vault's SQL, written once for every SQL backend: the statements and the session running them.

The SQLite store (:mod:`~.sqlite`) and the PostgreSQL store (:mod:`~.postgres`) keep the same
tables and run the same statements. What differs is a :class:`Dialect`: the placeholders
(``?`` and ``:name`` for ``sqlite3``, ``%s`` and ``%(name)s`` for psycopg) and the two statements
that list things oldest first (SQLite's ``rowid`` is PostgreSQL's ``seq`` column). Upserts use the
``ON CONFLICT`` clause both databases understand (SQLite 3.24 and later).

:class:`SQLSession` implements :class:`~exact_connector.vault.store.StoreSession` on a connection
of either driver: both return rows that can be read by column name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from exact_connector.vault.records import FIELDS
from exact_connector.vault.store import Row

__all__ = ["POSTGRES", "SQLITE", "Dialect", "SQLSession"]

#: A checkpoint's state after a reset: what a trigger's first poll starts from.
_EMPTY_STATE = "{}"

_SELECT = f"SELECT {', '.join(FIELDS)} FROM credentials"  # noqa: S608 (fixed names)
_INSERT = (
    f"INSERT INTO credentials ({', '.join(FIELDS)})"  # noqa: S608 (fixed names)
    f" VALUES (:{', :'.join(FIELDS)})"
)
_SWAP = (
    f"UPDATE credentials SET {', '.join(f'{c} = :{c}' for c in FIELDS)}"  # noqa: S608
    " WHERE id = :id AND version = :expected_version"
)
_RESEAL = (
    "UPDATE credentials SET client_secret = :client_secret, refresh_token = :refresh_token,"
    " access_token = :access_token WHERE id = :id"
)
_NAMED = re.compile(r":(\w+)")


class _Connection(Protocol):
    """A DB-API connection with ``execute`` (``sqlite3`` and psycopg 3 both have it)."""

    def execute(self, query: str, params: Any, /) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    """What one SQL backend does differently from the other."""

    #: True for psycopg's ``%s`` / ``%(name)s`` placeholders, False for ``?`` / ``:name``.
    pyformat: bool
    #: Every credential id, oldest first.
    credential_ids: str
    #: Every data key (``kid``, ``purpose``), oldest first.
    data_keys: str

    def adapt(self, query: str) -> str:
        """``query`` (written with ``?`` and ``:name``) in this dialect's placeholders."""
        return _pyformat(query) if self.pyformat else query


@functools.cache
def _pyformat(query: str) -> str:
    return _NAMED.sub(r"%(\1)s", query).replace("?", "%s")


SQLITE = Dialect(
    pyformat=False,
    credential_ids="SELECT id FROM credentials ORDER BY rowid",
    data_keys="SELECT kid, purpose FROM data_keys ORDER BY created_at",
)
POSTGRES = Dialect(
    pyformat=True,
    credential_ids="SELECT id FROM credentials ORDER BY seq",
    data_keys="SELECT kid, purpose FROM data_keys ORDER BY created_at, kid",
)


class SQLSession:
    """One transaction on the vault's tables: rows in, rows out (see ``StoreSession``)."""

    def __init__(self, conn: _Connection, dialect: Dialect) -> None:
        self._conn, self._dialect = conn, dialect

    def _run(self, query: str, args: Any = ()) -> Any:
        return self._conn.execute(self._dialect.adapt(query), args)

    def _one(self, query: str, *args: Any) -> Row | None:
        row = self._run(query, args).fetchone()
        return None if row is None else dict(row)

    def _all(self, query: str, *args: Any) -> list[Row]:
        return [dict(row) for row in self._run(query, args)]

    def _column(self, column: str, query: str, *args: Any) -> list[Any]:
        return [row[column] for row in self._run(query, args)]

    def _changed(self, query: str, args: Any) -> bool:
        return bool(self._run(query, args).rowcount == 1)

    def credential(self, credential_id: str, workspace: str | None = None) -> Row | None:
        if workspace is None:
            return self._one(f"{_SELECT} WHERE id = ?", credential_id)
        return self._one(f"{_SELECT} WHERE id = ? AND workspace = ?", credential_id, workspace)

    def credential_by_name(self, workspace: str, connector_name: str) -> Row | None:
        query = f"{_SELECT} WHERE connector_name = ? AND workspace = ?"
        return self._one(query, connector_name, workspace)

    def credentials(self, workspace: str | None) -> list[Row]:
        if workspace is None:
            return self._all(f"{_SELECT} ORDER BY workspace, connector_name")
        return self._all(f"{_SELECT} WHERE workspace = ? ORDER BY connector_name", workspace)

    def credential_ids(self) -> list[str]:
        return self._column("id", self._dialect.credential_ids)

    def insert_credential(self, row: Row) -> None:
        self._run(_INSERT, dict(row))

    def swap_credential(self, row: Row, expected_version: int) -> bool:
        return self._changed(_SWAP, {**row, "expected_version": expected_version})

    def reseal_credential(self, credential_id: str, blobs: Mapping[str, bytes | None]) -> None:
        self._run(_RESEAL, {**blobs, "id": credential_id})

    def delete_credential(self, credential_id: str) -> None:
        self._run("DELETE FROM credentials WHERE id = ?", (credential_id,))

    def put_sign_in(self, credential_id: str, state_digest: str, expires_at: float) -> None:
        self._run(
            "INSERT INTO sign_ins VALUES (?, ?, ?) ON CONFLICT (credential_id) DO UPDATE"
            " SET state_digest = excluded.state_digest, expires_at = excluded.expires_at",
            (credential_id, state_digest, expires_at),
        )

    def sign_in(self, credential_id: str) -> Row | None:
        query = "SELECT state_digest, expires_at FROM sign_ins WHERE credential_id = ?"
        return self._one(query, credential_id)

    def delete_sign_in(self, credential_id: str) -> None:
        self._run("DELETE FROM sign_ins WHERE credential_id = ?", (credential_id,))

    def checkpoint(self, key: str) -> Row | None:
        return self._one("SELECT version, state FROM trigger_checkpoints WHERE key = ?", key)

    def swap_checkpoint(
        self, key: str, credential_id: str, expected_version: int, state: str, at: float
    ) -> bool:
        if expected_version == 0:  # the SELECT's WHERE lets SQLite parse the ON CONFLICT
            return self._changed(
                "INSERT INTO trigger_checkpoints SELECT ?, id, 1, ?, ? FROM credentials"
                " WHERE id = ? ON CONFLICT (key) DO NOTHING",
                (key, state, at, credential_id),
            )
        return self._changed(
            "UPDATE trigger_checkpoints SET version = version + 1, state = ?, updated_at = ?"
            " WHERE key = ? AND credential_id = ? AND version = ?",
            (state, at, key, credential_id, expected_version),
        )

    def reset_checkpoint(self, key: str, at: float) -> bool:
        return self._changed(
            "UPDATE trigger_checkpoints SET version = version + 1, state = ?, updated_at = ?"
            " WHERE key = ? AND state <> ?",
            (_EMPTY_STATE, at, key, _EMPTY_STATE),
        )

    def append_audit(self, event: Row) -> None:
        self._run(
            "INSERT INTO audit (at, workspace, credential_id, event, detail)"
            " VALUES (:at, :workspace, :credential_id, :event, :detail)",
            dict(event),
        )

    def audit(self, workspace: str, credential_id: str | None) -> list[Row]:
        query = (
            "SELECT seq, at, workspace, credential_id, event, detail FROM audit"
            " WHERE (workspace = ? OR workspace IS NULL)"
        )
        if credential_id is None:
            return self._all(query + " ORDER BY seq", workspace)
        return self._all(query + " AND credential_id = ? ORDER BY seq", workspace, credential_id)

    def header(self) -> dict[str, str]:
        rows = self._all("SELECT name, value FROM meta WHERE name != 'schema_version'")
        return {str(row["name"]): str(row["value"]) for row in rows}

    def set_header(self, name: str, value: str) -> None:
        self._run(
            "INSERT INTO meta VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def insert_data_key(self, kid: str, purpose: str, created_at: float) -> None:
        self._run("INSERT INTO data_keys VALUES (?, ?, ?)", (kid, purpose, created_at))

    def data_key_purpose(self, kid: str) -> str | None:
        found = self._column("purpose", "SELECT purpose FROM data_keys WHERE kid = ?", kid)
        return str(found[0]) if found else None

    def data_keys(self) -> list[Row]:
        return self._all(self._dialect.data_keys)

    def delete_data_key(self, kid: str) -> None:
        self._run("DELETE FROM data_keys WHERE kid = ?", (kid,))  # wraps cascade

    def put_wrap(self, data_kid: str, master_kid: str, blob: bytes) -> None:
        self._run(
            "INSERT INTO key_wraps VALUES (?, ?, ?)"
            " ON CONFLICT (data_kid, master_kid) DO UPDATE SET blob = excluded.blob",
            (data_kid, master_kid, blob),
        )

    def wraps(self, data_kid: str) -> dict[str, bytes]:
        query = "SELECT master_kid, blob FROM key_wraps WHERE data_kid = ?"
        return {str(row["master_kid"]): bytes(row["blob"]) for row in self._all(query, data_kid)}

    def master_kids(self) -> list[str]:
        query = "SELECT DISTINCT master_kid FROM key_wraps ORDER BY 1"
        return self._column("master_kid", query)

    def delete_wraps(self, master_kid: str) -> None:
        self._run("DELETE FROM key_wraps WHERE master_kid = ?", (master_kid,))
