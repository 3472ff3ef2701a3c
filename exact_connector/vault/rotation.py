"""Key rotation: re-encrypting records under a new data key, re-wrapping under a new master key.

Both act on the whole vault file, in small transactions, so they can stop anywhere (a crash, a
kill) and be run again: :func:`rotate_key` first finishes a rotation left half-way, and nothing is
retired until every record verifies under the new key. A key is only retired while nothing still
needs it; the refusal says how many records or data keys do.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from exact_connector import sealing
from exact_connector._vault_keys import DataKeys, primary_data_kid
from exact_connector._vault_records import SECRET_FIELDS, VerifyResult, verify
from exact_connector._vault_store import Store
from exact_connector.exceptions import (
    VaultIntegrityError,
    VaultKeyError,
    VaultKeyMismatch,
    VaultKeyUnknown,
)
from exact_connector.sealing import MasterKey

__all__ = ["KeyInfo", "RotationReport", "key_info", "retire_key", "rewrap", "rotate_key"]

_RESEAL = (
    "UPDATE credentials SET client_secret = :client_secret, refresh_token = :refresh_token,"
    " access_token = :access_token WHERE id = :id"
)


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


def rotate_key(store: Store, new_key: bytes | None = None) -> RotationReport:
    """Re-encrypt every record under a fresh data key (or finish a rotation), verify, retire."""
    keys = store.keys
    if new_key is not None:
        rewrap(store, new_key)
    with store.write("rotate_start") as conn:
        resumed = bool(_old_data_kids(conn))
        new_kid = keys.primary_kid
        if not resumed:
            new_kid = keys.create(conn, "data")
            conn.execute("UPDATE meta SET value = ? WHERE name = 'primary_data_key'", (new_kid,))
    keys.primary_kid = new_kid
    with store.read() as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM credentials ORDER BY rowid")]
    reencrypted = 0
    for cid in ids:
        with contextlib.suppress(VaultIntegrityError, VaultKeyError):  # reported by verify
            reencrypted += _reseal(store, cid)
    failed = tuple(result for result in verify(store, None) if not result.ok)
    retired: list[str] = []
    if not failed:
        with store.read() as conn:
            old = _old_data_kids(conn)
        for kid in old:
            retire_key(store, kid)
            retired.append(kid)
    detail = {"data_key": new_kid, "reencrypted": reencrypted, "retired": retired}
    with store.write("rotate_end") as conn:
        store.audit(conn, "data_key_rotated", None, None, detail)
    return RotationReport(
        kind="data",
        new_kid=new_kid,
        resumed=resumed,
        reencrypted=reencrypted,
        unchanged=len(ids) - reencrypted,
        retired=tuple(retired),
        failed=failed,
    )


def rewrap(
    store: Store, new_key: bytes | None = None, *, retire_old: bool = False
) -> RotationReport:
    """Wrap every data key under ``new_key`` (else the ring's primary); records stay untouched."""
    keys = store.keys
    if new_key is not None:
        keys.ring = keys.ring.with_primary(MasterKey.from_bytes(new_key))
    master = keys.ring.primary
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
            keys.wrap(conn, kid, keys.get(kid), master)
        _check_wraps(keys, conn, master, kids)
        store.audit(conn, "master_key_rotated", None, None, {"master_key": master.kid})
    retired = [kid for kid in keys.master_kids() if kid != master.kid] if retire_old else []
    for kid in retired:
        retire_key(store, kid)
    return RotationReport(
        kind="master",
        new_kid=master.kid,
        resumed=bool(missing) and bool(have),
        reencrypted=len(missing),
        unchanged=len(kids) - len(missing),
        retired=tuple(retired),
        failed=(),
    )


def retire_key(store: Store, kid: str) -> None:
    """Remove an old data or master key; refused (with the count) while anything needs it."""
    keys = store.keys
    with store.write("retire") as conn:
        purpose = conn.execute("SELECT purpose FROM data_keys WHERE kid = ?", (kid,)).fetchone()
        if purpose is not None:
            if purpose[0] != "data" or kid == keys.primary_kid:
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
            if kid == keys.ring.primary.kid:
                raise VaultKeyError(f"refusing to retire {kid}: it is this process's primary key")
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
        store.audit(conn, "key_retired", None, None, {"kid": kid})
    keys.forget(kid)


def key_info(store: Store) -> list[KeyInfo]:
    """Every master and data key of the vault, with the number of records under each."""
    keys = store.keys
    with store.read() as conn:
        data = conn.execute("SELECT kid, purpose FROM data_keys ORDER BY created_at").fetchall()
        masters = [row[0] for row in conn.execute("SELECT DISTINCT master_kid FROM key_wraps")]
        usage, primary = _kid_usage(conn), primary_data_kid(conn)
    infos = [
        KeyInfo(
            kid=kid,
            kind="master",
            primary=kid == keys.ring.primary.kid,
            available=keys.ring.get(kid) is not None,
        )
        for kid in sorted(masters)
    ]
    for kid, purpose in data:
        try:
            available = bool(keys.get(kid))
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


def _old_data_kids(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT kid FROM data_keys WHERE purpose = 'data' AND kid != ?", (primary_data_kid(conn),)
    ).fetchall()
    return [row[0] for row in rows]


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


def _reseal(store: Store, cid: str) -> bool:
    """Re-encrypt one record under the primary data key; False if it already is (or is gone)."""
    keys = store.keys
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
            == keys.primary_kid
            for field, blob in blobs.items()
        ):
            return False
        fresh = {
            field: keys.seal(cid, field, keys.unseal(cid, field, row[field]))
            if row[field] is not None
            else None
            for field in SECRET_FIELDS
        }
        conn.execute(_RESEAL, {**fresh, "id": cid})
        return True


def _check_wraps(
    keys: DataKeys, conn: sqlite3.Connection, master: MasterKey, kids: Sequence[str]
) -> None:
    """Prove ``master`` unwraps every data key to the very key in use, before anything retires."""
    for kid in kids:
        blob = conn.execute(
            "SELECT blob FROM key_wraps WHERE data_kid = ? AND master_kid = ?",
            (kid, master.kid),
        ).fetchone()[0]
        try:
            key = keys.unwrap(blob, kid, master)
        except VaultIntegrityError:
            raise VaultKeyMismatch(
                f"master key {master.kid} does not match this vault's wrap of {kid}"
            ) from None
        if key != keys.get(kid):
            raise VaultKeyMismatch(f"master key {master.kid} unwraps {kid} to another key")
