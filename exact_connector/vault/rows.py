"""Credentials as stored rows: sealed on the way in, checked on the way out, changed by swap.

Each secret of a :class:`~.records.Credential` is stored as its own sealed blob; every other field
is a plain column, so a record can be found and removed without decrypting it. The plain columns
that say who the record is and where its tokens may go (:data:`BOUND_FIELDS`) are bound into every
blob's authenticated data: a row whose name, workspace, server URL or divisions were edited (or
swapped with another row's) does not open. A column whose bytes are not UTF-8 makes that record,
and only that one, unreadable. Every change is a compare-and-swap on the record's version, audited
in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr, ValidationError

from exact_connector.exceptions import (
    ConcurrentUpdate,
    CredentialExists,
    CredentialNotFound,
    VaultCorrupt,
    VaultIntegrityError,
    VaultKeyError,
)
from exact_connector.vault import sealing
from exact_connector.vault.keys import DataKeys
from exact_connector.vault.records import (
    FIELDS,
    SECRET_FIELDS,
    Credential,
    VerifyResult,
    canonical_id,
    error_field,
    validate,
)
from exact_connector.vault.store import Row, StoreSession, corrupt_hint

__all__ = [
    "BOUND_FIELDS",
    "UNREADABLE",
    "Change",
    "audit",
    "audit_credential",
    "bound",
    "decode",
    "encode",
    "find_row",
    "fingerprints",
    "insert",
    "moved_on",
    "mutate",
    "not_found",
    "row_of",
    "shown",
    "stored_values",
    "verify",
]

#: Plain columns whose stored text every secret blob of the record is bound to.
BOUND_FIELDS = (
    "id",
    "workspace",
    "connector_name",
    "auth_type",
    "server_url",
    "client_id",
    "redirect_uri",
    "allowed_divisions",
    "default_division",
)

#: What reading a record raises when it does not decrypt; every other record stays readable.
UNREADABLE = (VaultIntegrityError, VaultKeyError)

_PLACEHOLDER = SecretStr("sealed")  # stands in for a secret while only plain fields are checked


def find_row(session: StoreSession, workspace: str, key: str) -> Row | None:
    """The row of the credential with id or connector name ``key`` in ``workspace``."""
    cid = canonical_id(key) if isinstance(key, str) else None
    if cid is not None:
        return session.credential(cid, workspace)
    return session.credential_by_name(workspace, key)


def insert(keys: DataKeys, session: StoreSession, draft: Credential) -> None:
    """Add a new record, audited; CredentialExists if its workspace has one of that name."""
    if find_row(session, draft.workspace, draft.connector_name) is not None:
        raise CredentialExists(
            f"a credential named {draft.connector_name!r} already exists in workspace "
            f"{draft.workspace!r}",
            details={"connector_name": draft.connector_name, "workspace": draft.workspace},
        )
    session.insert_credential(encode(keys, draft))
    created = fingerprints(keys, draft, "client_secret", "refresh_token")
    audit_credential(keys, session, "created", draft, created)


def row_of(session: StoreSession, workspace: str, key: str) -> Row:
    """The row :func:`find_row` finds; CredentialNotFound if there is none."""
    row = find_row(session, workspace, key)
    if row is None:
        raise not_found(workspace, key)
    return row


def not_found(workspace: str, key: object) -> CredentialNotFound:
    """The error for a credential id or name that ``workspace`` does not hold."""
    named = str(key)[:100]
    return CredentialNotFound(
        f"no credential {named!r} in workspace {workspace!r}",
        details={"credential": named, "workspace": workspace},
    )


def stored_values(row: Row) -> tuple[Any, ...]:
    """Every stored value of a row, sealed secrets included: equal tuples decode alike."""
    return tuple(row[name] for name in FIELDS)


def bound(row: Row) -> str:
    """The digest of a row's :data:`BOUND_FIELDS` as stored, which its blobs are sealed with."""
    text = json.dumps([row[name] for name in BOUND_FIELDS], separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def decode(keys: DataKeys, row: Row) -> Credential:
    """The credential in a row, secrets unsealed; a row that does not validate is corrupt."""
    cid = str(row["id"])
    unreadable = next((name for name in FIELDS if _undecodable(row.get(name))), None)
    if unreadable is not None:
        raise _corrupt(keys, shown(cid), unreadable, "is not UTF-8 text")
    values = {name: row[name] for name in FIELDS if name not in SECRET_FIELDS}
    digest = bound(row)
    try:
        for field in SECRET_FIELDS:
            blob = row[field]
            values[field] = None if blob is None else keys.unseal(cid, field, blob, digest)
    except VaultIntegrityError:
        # A plain column that is itself invalid is the better thing to name than the blob.
        # Every secret field is given (None where its column is NULL), or a NULL one would be
        # reported as missing instead of the blob that failed.
        placeholders = {f: None if row[f] is None else _PLACEHOLDER for f in SECRET_FIELDS}
        _validated(keys, cid, {**values, **placeholders})
        raise
    return _validated(keys, cid, values)


def _validated(keys: DataKeys, cid: str, values: dict[str, Any]) -> Credential:
    try:
        values["allowed_divisions"] = tuple(json.loads(values["allowed_divisions"]))
        return Credential.model_validate(values)
    except (TypeError, ValueError) as error:
        errors = error.errors(include_input=False) if isinstance(error, ValidationError) else []
        field = (error_field(errors[0]) if errors else "allowed_divisions") or "record"
        raise _corrupt(keys, cid, field, "is invalid") from None


def _corrupt(keys: DataKeys, cid: str, field: str, problem: str) -> VaultCorrupt:
    return VaultCorrupt(
        f"credential {cid}: stored field {field} {problem}",
        details={"credential_id": cid, "field": field},
        hint=corrupt_hint(keys.store.where),
    )


def _undecodable(value: object) -> bool:
    """Text the store read with its undecodable bytes kept as lone surrogates."""
    return isinstance(value, str) and shown(value) != value


def shown(text: str) -> str:
    """Stored text as it can be printed: bytes that were not UTF-8 become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def encode(keys: DataKeys, credential: Credential) -> dict[str, Any]:
    """The row for a credential, each secret sealed under the current data key and bound to the
    row's plain fields."""
    # Secrets go through get_secret_value(): model_dump_json() would store "**********".
    row = credential.model_dump(exclude=set(SECRET_FIELDS))
    row["allowed_divisions"] = json.dumps(list(credential.allowed_divisions))
    digest = bound(row)
    for field in SECRET_FIELDS:
        secret = getattr(credential, field)
        row[field] = None if secret is None else keys.seal(credential.id, field, secret, digest)
    return row


def verify(keys: DataKeys, workspace: str | None) -> list[VerifyResult]:
    """Decrypt every record of ``workspace`` (None: of every workspace); one result per record."""
    with keys.read() as session:
        rows = session.credentials(workspace)
    results = []
    for row in rows:
        ident = {name: shown(str(row[name])) for name in ("id", "workspace", "connector_name")}
        try:
            decode(keys, row)
        except UNREADABLE as error:
            field = error.details.get("field")
            results.append(VerifyResult(**ident, ok=False, error_code=error.code, field=field))
        else:
            results.append(VerifyResult(**ident, ok=True))
    return results


def audit(
    keys: DataKeys,
    session: StoreSession,
    event: str,
    workspace: str | None,
    credential_id: str | None,
    detail: dict[str, Any],
) -> None:
    """Append one audit event inside the caller's transaction."""
    at = keys.clock.now()
    session.append_audit(
        {
            "at": at,
            "workspace": workspace,
            "credential_id": credential_id,
            "event": event,
            "detail": json.dumps(detail),
        }
    )


#: A change to a record: the current credential -> the fields to replace.
Change = Callable[[Credential], Mapping[str, Any]]
_Detail = Callable[[DataKeys, Credential, Credential], Mapping[str, Any]]


def _status_detail(_: DataKeys, old: Credential, new: Credential) -> Mapping[str, Any]:
    return {"status": new.status, "previous": old.status, "reason": new.status_reason}


#: What each kind of change adds to its audit event (secrets only as fingerprints).
_AUDIT_DETAIL: dict[str, _Detail] = {
    "tokens_updated": lambda keys, _, new: fingerprints(keys, new, "refresh_token", "access_token"),
    "status": _status_detail,
    "activated": _status_detail,
    "divisions": lambda _, __, new: {
        "allowed": list(new.allowed_divisions),
        "default": new.default_division,
    },
}


def mutate(
    keys: DataKeys,
    session: StoreSession,
    row: Row,
    expected_version: int | None,
    change: Change,
    event: str,
) -> Credential:
    """Compare-and-swap ``change`` into the record in ``row``, audited in the same transaction."""
    if expected_version is not None and row["version"] != expected_version:
        raise moved_on(row["id"], expected_version, row["version"])
    current = decode(keys, row)
    new = validate(
        {
            **current.model_dump(),
            **change(current),
            "version": current.version + 1,
            "updated_at": keys.clock.now(),
        }
    )
    if not session.swap_credential(encode(keys, new), current.version):
        raise moved_on(row["id"], current.version, None)  # a backend's weaker isolation
    detail = {"version": new.version, **_AUDIT_DETAIL[event](keys, current, new)}
    audit_credential(keys, session, event, new, detail)
    return new


def moved_on(credential_id: str, expected: int, current: int | None) -> ConcurrentUpdate:
    """The error for a record that is no longer at the version the caller read."""
    now = "another version" if current is None else f"version {current}"
    return ConcurrentUpdate(
        f"credential {credential_id} is at {now}, not {expected}",
        details={
            "credential_id": credential_id,
            "expected_version": expected,
            "current_version": current,
        },
    )


def fingerprints(keys: DataKeys, credential: Credential, *fields: str) -> dict[str, str]:
    """HMAC fingerprints of the named secret fields that are set."""
    return {
        field: sealing.fingerprint(keys.fingerprint_key, secret.get_secret_value())
        for field in fields
        if (secret := getattr(credential, field)) is not None
    }


def audit_credential(
    keys: DataKeys,
    session: StoreSession,
    event: str,
    credential: Credential,
    detail: Mapping[str, Any],
) -> None:
    """Append an event about ``credential`` (its name first) inside the caller's transaction."""
    detail = {"connector_name": credential.connector_name, **detail}
    audit(keys, session, event, credential.workspace, credential.id, dict(detail))
