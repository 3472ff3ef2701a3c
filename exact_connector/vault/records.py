"""Credential records: the pydantic models, and how a record maps to and from its stored row.

A :class:`Credential` is validated strictly on the way in and again on the way out, so a row edited
outside exact-connector is reported as corrupt (naming the field) rather than half-trusted. Its
secrets are ``SecretStr`` and each is stored as its own sealed blob; every other field is a plain
column, so a record can be found and removed without decrypting it. The plain columns that say who
the record is and where its tokens may go (:data:`BOUND_FIELDS`) are bound into every blob's
authenticated data: a row whose name, workspace, server URL or divisions were edited (or swapped
with another row's) does not open. A column whose bytes are not UTF-8 makes that record, and only
that one, unreadable.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from exact_connector.exceptions import (
    ConcurrentUpdate,
    InputError,
    VaultCorrupt,
    VaultIntegrityError,
    VaultKeyError,
)
from exact_connector.vault import sealing
from exact_connector.vault.keys import DataKeys
from exact_connector.vault.store import Row, StoreSession, corrupt_hint

__all__ = [
    "BOUND_FIELDS",
    "SECRET_FIELDS",
    "AuditEntry",
    "Change",
    "Credential",
    "VerifyResult",
    "audit",
    "audit_credential",
    "bound",
    "canonical_id",
    "check_workspace",
    "decode",
    "encode",
    "find_row",
    "fingerprints",
    "moved_on",
    "mutate",
    "one_line",
    "pending",
    "shown",
    "stored_values",
    "validate",
    "verify",
]

SECRET_FIELDS = ("client_secret", "refresh_token", "access_token")
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
_WORKSPACE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@-]*"  # at most 128 characters
_WORKSPACE = re.compile(_WORKSPACE_PATTERN)

Status = Literal["pending", "active", "needs_reauth", "disabled"]
AuthType = Literal["oauth2_authorization_code", "oauth2_refresh_token"]
_PRINTABLE = r"^[^\s\x00-\x1f\x7f]+$"
_Id = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
_Workspace = Annotated[str, Field(max_length=128, pattern=f"^{_WORKSPACE_PATTERN}$")]
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


class AuditEntry(BaseModel):
    """One audit event; secrets appear only as HMAC fingerprints."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: float
    workspace: str | None
    credential_id: str | None
    event: str
    detail: dict[str, Any]


_COLUMNS = tuple(Credential.model_fields)
_PLACEHOLDER = SecretStr("sealed")  # stands in for a secret while only plain fields are checked


#: The fields of a new credential that the caller does not choose.
_PENDING = {
    "status": "pending",
    "status_reason": None,
    "allowed_divisions": (),
    "default_division": None,
    "access_token": None,
    "access_token_issued_at": None,
    "access_token_expires_at": None,
    "version": 1,
}
#: Auth type -> the field it cannot start without.
_REQUIRED_BY_AUTH = {
    "oauth2_refresh_token": "refresh_token",
    "oauth2_authorization_code": "redirect_uri",
}


def canonical_id(value: str) -> str | None:
    """``value`` as a lower-case hyphenated UUID, or None if it is not a credential id."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def check_workspace(workspace: str) -> str:
    """``workspace`` if it is a valid name, else InputError."""
    if (
        not isinstance(workspace, str)
        or len(workspace) > 128
        or not _WORKSPACE.fullmatch(workspace)
    ):
        message = "1-128 letters, digits or ._:@- (starting with a letter or digit)"
        problem = {"path": "$.workspace", "code": "pattern", "message": message}
        raise InputError("invalid workspace name", errors=[problem])
    return workspace


def one_line(text: str | None, limit: int = 500) -> str | None:
    """A status reason as one line of at most ``limit`` characters (None if nothing is left)."""
    if not isinstance(text, str):
        return text
    line = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text).split())
    return (line if len(line) <= limit else line[: limit - 1] + "…") or None


def pending(workspace: str, now: float, given: Mapping[str, Any]) -> Credential:
    """A new ``pending`` credential from the caller's fields; InputError lists what is wrong."""
    refresh_issued_at = None if given.get("refresh_token") is None else now
    draft = validate(
        {
            **_PENDING,
            **given,
            "id": str(uuid.uuid4()),
            "workspace": workspace,
            "refresh_token_issued_at": refresh_issued_at,
            "created_at": now,
            "updated_at": now,
        }
    )
    field = _REQUIRED_BY_AUTH[draft.auth_type]
    if given.get(field) is None:
        raise InputError(
            f"{draft.auth_type} needs a {field}",
            errors=[{"path": f"$.{field}", "code": "required", "message": "required"}],
        )
    if canonical_id(draft.connector_name) is not None:
        raise InputError(
            "a connector name must not look like a credential id",
            errors=[{"path": "$.connector_name", "code": "pattern", "message": "not a UUID"}],
        )
    return draft


def find_row(session: StoreSession, workspace: str, key: str) -> Row | None:
    """The row of the credential with id or connector name ``key`` in ``workspace``."""
    cid = canonical_id(key) if isinstance(key, str) else None
    if cid is not None:
        return session.credential(cid, workspace)
    return session.credential_by_name(workspace, key)


def validate(values: Mapping[str, Any]) -> Credential:
    """A credential from caller data; InputError lists every problem with its JSON path."""
    try:
        return Credential.model_validate(values)
    except ValidationError as error:
        errors = [
            {"path": f"$.{_error_field(e)}".rstrip("."), "code": e["type"], "message": e["msg"]}
            for e in error.errors(include_input=False, include_url=False)
        ]
        raise InputError("the credential data is invalid", errors=errors) from None


def stored_values(row: Row) -> tuple[Any, ...]:
    """Every stored value of a row, sealed secrets included: equal tuples decode alike."""
    return tuple(row[name] for name in _COLUMNS)


def bound(row: Row) -> str:
    """The digest of a row's :data:`BOUND_FIELDS` as stored, which its blobs are sealed with."""
    text = json.dumps([row[name] for name in BOUND_FIELDS], separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def decode(keys: DataKeys, row: Row) -> Credential:
    """The credential in a row, secrets unsealed; a row that does not validate is corrupt."""
    cid = str(row["id"])
    unreadable = next((name for name in _COLUMNS if _undecodable(row.get(name))), None)
    if unreadable is not None:
        raise _corrupt(keys, shown(cid), unreadable, "is not UTF-8 text")
    values = {name: row[name] for name in _COLUMNS if name not in SECRET_FIELDS}
    digest = bound(row)
    try:
        for field in SECRET_FIELDS:
            blob = row[field]
            values[field] = None if blob is None else keys.unseal(cid, field, blob, digest)
    except VaultIntegrityError:
        # A plain column that is itself invalid is the better thing to name than the blob.
        _validated(keys, cid, {**values, **{f: _PLACEHOLDER for f in SECRET_FIELDS if row[f]}})
        raise
    return _validated(keys, cid, values)


def _validated(keys: DataKeys, cid: str, values: dict[str, Any]) -> Credential:
    try:
        values["allowed_divisions"] = tuple(json.loads(values["allowed_divisions"]))
        return Credential.model_validate(values)
    except (TypeError, ValueError) as error:
        errors = error.errors(include_input=False) if isinstance(error, ValidationError) else []
        field = (_error_field(errors[0]) if errors else "allowed_divisions") or "record"
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
        except (VaultIntegrityError, VaultKeyError) as error:
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
