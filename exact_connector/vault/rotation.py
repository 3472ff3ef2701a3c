"""Key rotation: re-encrypting records under a new data key, re-wrapping under a new master key.

Both act on the whole vault file, in small transactions, so they can stop anywhere (a crash, a
kill) and be run again: :func:`rotate_key` first finishes a rotation left half-way, and nothing is
retired until every record verifies under the new key. A key is only retired while nothing still
needs it; the refusal says how many records or data keys do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from exact_connector.exceptions import (
    VaultIntegrityError,
    VaultKeyError,
    VaultKeyMismatch,
    VaultKeyUnknown,
)
from exact_connector.vault import sealing
from exact_connector.vault.keys import DataKeys
from exact_connector.vault.records import SECRET_FIELDS, VerifyResult
from exact_connector.vault.rows import audit, bound, verify
from exact_connector.vault.sealing import MasterKey
from exact_connector.vault.store import StoreSession

__all__ = ["KeyInfo", "RotationReport", "key_info", "retire_key", "rewrap", "rotate_key"]


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


def rotate_key(keys: DataKeys, new_key: bytes | None = None) -> RotationReport:
    """Re-encrypt every record under a fresh data key (or finish a rotation), verify, retire."""
    if new_key is not None:
        rewrap(keys, new_key)
    with keys.write("rotate_start") as session:
        resumed = bool(_old_data_kids(session))
        new_kid = keys.primary_kid
        if not resumed:
            new_kid = keys.create(session, "data")
            session.set_header("primary_data_key", new_kid)
    keys.primary_kid = new_kid
    with keys.read() as session:
        ids = session.credential_ids()
    reencrypted = 0
    for cid in ids:
        with contextlib.suppress(VaultIntegrityError, VaultKeyError):  # reported by verify
            reencrypted += _reseal(keys, cid)
    failed = tuple(result for result in verify(keys, None) if not result.ok)
    retired: list[str] = []
    if not failed:
        with keys.read() as session:
            old = _old_data_kids(session)
        for kid in old:
            retire_key(keys, kid)
            retired.append(kid)
    detail = {"data_key": new_kid, "reencrypted": reencrypted, "retired": retired}
    with keys.write("rotate_end") as session:
        audit(keys, session, "data_key_rotated", None, None, detail)
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
    keys: DataKeys, new_key: bytes | None = None, *, retire_old: bool = False
) -> RotationReport:
    """Wrap every data key under ``new_key`` (else the ring's primary); records stay untouched."""
    if new_key is not None:
        keys.ring = keys.ring.with_primary(MasterKey.from_bytes(new_key))
    master = keys.ring.primary
    with keys.write("rewrap") as session:
        kids = [str(row["kid"]) for row in session.data_keys()]
        have = {kid for kid in kids if master.kid in session.wraps(kid)}
        missing = [kid for kid in kids if kid not in have]
        for kid in missing:
            keys.wrap(session, kid, keys.get(kid), master)
        _check_wraps(keys, session, master, kids)
        audit(keys, session, "master_key_rotated", None, None, {"master_key": master.kid})
    retired = [kid for kid in keys.master_kids() if kid != master.kid] if retire_old else []
    for kid in retired:
        retire_key(keys, kid)
    return RotationReport(
        kind="master",
        new_kid=master.kid,
        resumed=bool(missing) and bool(have),
        reencrypted=len(missing),
        unchanged=len(kids) - len(missing),
        retired=tuple(retired),
        failed=(),
    )


def retire_key(keys: DataKeys, kid: str) -> None:
    """Remove an old data or master key; refused (with the count) while anything needs it."""
    with keys.write("retire") as session:
        purpose = session.data_key_purpose(kid)
        if purpose is not None:
            if purpose != "data" or kid == keys.primary_kid:
                raise VaultKeyError(f"refusing to retire {kid}: it is the vault's current key")
            count = _kid_usage(session).get(kid, 0)
            if count:
                raise VaultKeyError(
                    f"refusing to retire data key {kid}: {count} credential(s) still use it",
                    details={"kid": kid, "count": count},
                    hint="Finish the rotation first: rotating again resumes where it stopped.",
                )
            session.delete_data_key(kid)
        elif kid in session.master_kids():
            if kid == keys.ring.primary.kid:
                raise VaultKeyError(f"refusing to retire {kid}: it is this process's primary key")
            orphans = sum(
                not set(session.wraps(str(row["kid"]))) - {kid} for row in session.data_keys()
            )
            if orphans:
                raise VaultKeyError(
                    f"refusing to retire master key {kid}: {orphans} data key(s) are sealed "
                    "only under it",
                    details={"kid": kid, "count": orphans},
                    hint="Wrap them under the new key: vault rotate-key --master",
                )
            session.delete_wraps(kid)
        else:
            raise VaultKeyUnknown(f"this vault has no key {kid}", details={"kid": kid})
        audit(keys, session, "key_retired", None, None, {"kid": kid})
    keys.forget(kid)


def key_info(keys: DataKeys) -> list[KeyInfo]:
    """Every master and data key of the vault, with the number of records under each."""
    with keys.read() as session:
        data = [(str(row["kid"]), str(row["purpose"])) for row in session.data_keys()]
        masters = session.master_kids()
        usage, primary = _kid_usage(session), _primary(session)
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


def _primary(session: StoreSession) -> str:
    return session.header().get("primary_data_key", "")


def _old_data_kids(session: StoreSession) -> list[str]:
    primary = _primary(session)
    return [
        str(row["kid"])
        for row in session.data_keys()
        if row["purpose"] == "data" and row["kid"] != primary
    ]


def _kid_usage(session: StoreSession) -> dict[str, int]:
    """How many records have at least one blob under each data key (read from blob headers)."""
    usage: dict[str, int] = {}
    for row in session.credentials(None):
        kids: set[str] = set()
        for blob in (row[field] for field in SECRET_FIELDS):
            if isinstance(blob, bytes):
                with contextlib.suppress(VaultIntegrityError):
                    kids.add(sealing.blob_kid(blob, subject={}))
        for kid in kids:
            usage[kid] = usage.get(kid, 0) + 1
    return usage


def _reseal(keys: DataKeys, cid: str) -> bool:
    """Re-encrypt one record under the primary data key; False if it already is (or is gone)."""
    with keys.write("rotate") as session:
        row = session.credential(cid)
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
        digest = bound(row)
        fresh = {
            field: keys.seal(cid, field, keys.unseal(cid, field, row[field], digest), digest)
            if row[field] is not None
            else None
            for field in SECRET_FIELDS
        }
        session.reseal_credential(cid, fresh)
        return True


def _check_wraps(
    keys: DataKeys, session: StoreSession, master: MasterKey, kids: Sequence[str]
) -> None:
    """Prove ``master`` unwraps every data key to the very key in use, before anything retires."""
    for kid in kids:
        blob = session.wraps(kid)[master.kid]
        try:
            key = keys.unwrap(blob, kid, master)
        except VaultIntegrityError:
            raise VaultKeyMismatch(
                f"master key {master.kid} does not match this vault's wrap of {kid}"
            ) from None
        if key != keys.get(kid):
            raise VaultKeyMismatch(f"master key {master.kid} unwraps {kid} to another key")
