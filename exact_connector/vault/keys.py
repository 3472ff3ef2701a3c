"""The vault's data keys: the random keys that seal its fields, kept only wrapped under master keys.

Each data key has a row in ``data_keys`` and one wrap per master key in ``key_wraps``: a sealed blob
bound to the vault id, the record ``keyring`` and the data key's kid, so a wrap copied to another
vault or key fails to open. :class:`DataKeys` creates and wraps them, unwraps each at most once per
process, and seals and opens field blobs with them. Every configured master key that wraps a data
key must unwrap it to the same bytes: a wrong key fails loudly instead of being skipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

from pydantic import SecretStr

from exact_connector import sealing
from exact_connector.clock import Clock
from exact_connector.exceptions import VaultCorrupt, VaultIntegrityError, VaultKeyUnknown
from exact_connector.sealing import KeyRing, MasterKey

__all__ = ["DataKeys", "corrupt_hint", "primary_data_kid"]

#: Opens a read of the vault file (SQLite errors translated); only used when a key is not cached.
Reader = Callable[[], AbstractContextManager[sqlite3.Connection]]


def corrupt_hint(path: Path) -> str:
    """What to do about a damaged vault file: the one thing never to do is start afresh."""
    return (
        f"Restore {path} from a backup; do not delete it (an empty vault loses every credential)."
    )


def primary_data_kid(conn: sqlite3.Connection) -> str:
    """The kid new blobs are sealed under, as the file says now ("" if it says nothing)."""
    row = conn.execute("SELECT value FROM meta WHERE name = 'primary_data_key'").fetchone()
    return str(row[0]) if row else ""


class DataKeys:
    """One vault file's data keys, its vault id and its current primary, cached per process."""

    def __init__(self, ring: KeyRing, path: Path, clock: Clock, read: Reader) -> None:
        self.ring, self.path, self.clock = ring, path, clock
        self.vault_id = self.primary_kid = ""
        self.fingerprint_key = b""
        self._read = read
        self._cache: dict[str, bytes] = {}

    def create(self, conn: sqlite3.Connection, purpose: str) -> str:
        """Create a data key wrapped under the vault's master keys; returns its kid."""
        kid, key = sealing.new_data_kid(), sealing.generate_key()
        conn.execute("INSERT INTO data_keys VALUES (?, ?, ?)", (kid, purpose, self.clock.now()))
        in_use = {row[0] for row in conn.execute("SELECT DISTINCT master_kid FROM key_wraps")}
        for master in self.ring:
            if master is self.ring.primary or master.kid in in_use:
                self.wrap(conn, kid, key, master)
        self._cache[kid] = key
        return kid

    def wrap(self, conn: sqlite3.Connection, kid: str, key: bytes, master: MasterKey) -> None:
        """Store (or replace) the wrap of data key ``kid`` under ``master``."""
        blob = sealing.seal_blob(
            master.kid, master.key, key, vault_id=self.vault_id, record="keyring", field=kid
        )
        conn.execute("INSERT OR REPLACE INTO key_wraps VALUES (?, ?, ?)", (kid, master.kid, blob))

    def unwrap(self, blob: bytes, kid: str, master: MasterKey) -> bytes:
        """Data key ``kid`` from its wrap under ``master``; VaultIntegrityError if it fails."""
        return sealing.open_blob(
            blob,
            lambda _kid: master.key,
            vault_id=self.vault_id,
            record="keyring",
            field=kid,
            subject={"data_key": kid, "master_key": master.kid},
        )

    def get(self, kid: str, subject: Mapping[str, str] | None = None) -> bytes:
        """A data key by kid: from memory, else unwrapped from the vault (read once)."""
        key = self._cache.get(kid)
        if key is not None:
            return key
        subject = subject or {"data_key": kid}
        with self._read() as conn:
            known = conn.execute("SELECT 1 FROM data_keys WHERE kid = ?", (kid,)).fetchone()
            wraps = conn.execute(
                "SELECT master_kid, blob FROM key_wraps WHERE data_kid = ?", (kid,)
            ).fetchall()
        if known is None:
            raise VaultCorrupt(
                f"{sealing._where(subject)} names data key {kid}, which this vault never issued",
                details={**subject, "kid": kid},
                hint=corrupt_hint(self.path),
            )
        unwrapped = {
            self.unwrap(blob, kid, master)
            for master_kid, blob in wraps
            if (master := self.ring.get(master_kid)) is not None
        }
        if len(unwrapped) > 1:
            raise VaultIntegrityError(f"master keys disagree about data key {kid}", details=subject)
        if unwrapped:
            key = unwrapped.pop()
            self._cache[kid] = key
            return key
        sealed = ", ".join(sorted(row[0] for row in wraps)) or "no key"
        raise VaultKeyUnknown(
            f"data key {kid} is sealed under master key {sealed}, which this process does not hold",
            details={**subject, "kid": kid, "master_keys": sealed},
        )

    def follow_primary(self, conn: sqlite3.Connection) -> None:
        """Adopt the file's primary: another process may have rotated since we last looked."""
        kid = primary_data_kid(conn)
        if kid and kid != self.primary_kid:
            self.get(kid)
            self.primary_kid = kid

    def forget(self, kid: str) -> None:
        """Drop a retired key from memory."""
        self._cache.pop(kid, None)

    def master_kids(self) -> list[str]:
        """Every master key id that wraps at least one data key, sorted."""
        with self._read() as conn:
            rows = conn.execute("SELECT DISTINCT master_kid FROM key_wraps ORDER BY 1").fetchall()
        return [row[0] for row in rows]

    def seal(self, record: str, field: str, value: SecretStr) -> bytes:
        """A blob of ``value`` under the primary data key, bound to this record and field."""
        return sealing.seal_blob(
            self.primary_kid,
            self.get(self.primary_kid),
            value.get_secret_value().encode("utf-8"),
            vault_id=self.vault_id,
            record=record,
            field=field,
        )

    def unseal(self, record: str, field: str, blob: object) -> SecretStr:
        """The secret in a field's blob; typed errors name the record and field, never a value."""
        subject = {"credential_id": record, "field": field}
        if not isinstance(blob, bytes):
            raise VaultCorrupt(f"credential {record} field {field} is not a blob", details=subject)
        plain = sealing.open_blob(
            blob,
            lambda kid: self.get(kid, subject),
            vault_id=self.vault_id,
            record=record,
            field=field,
            subject=subject,
        )
        return SecretStr(plain.decode("utf-8"))
