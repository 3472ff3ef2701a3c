"""Credential records: the pydantic models, and the rules a new or changed record must pass.

A :class:`Credential` is validated strictly on the way in (:func:`validate`, :func:`pending`) and
again on the way out of the store (:mod:`~.rows`), so a row edited outside exact-connector is
reported as corrupt (naming the field) rather than half-trusted. Its secrets are ``SecretStr``:
they never appear in a repr, a str or a dump.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from exact_connector.exceptions import InputError

__all__ = [
    "FIELDS",
    "SECRET_FIELDS",
    "AuditEntry",
    "Credential",
    "VerifyResult",
    "canonical_id",
    "check_version",
    "check_workspace",
    "error_field",
    "one_line",
    "pending",
    "validate",
]


SECRET_FIELDS = ("client_secret", "refresh_token", "access_token")
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


def error_field(error: Mapping[str, Any]) -> str:
    """The field a pydantic error is about, as a dotted path (a cross-field rule names its own)."""
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


#: Every field of a credential, in order: the columns of its stored row.
FIELDS = tuple(Credential.model_fields)

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


def check_version(expected_version: object) -> None:
    """Nothing if ``expected_version`` is None or an integer (not a bool), else InputError."""
    if expected_version is not None and (
        not isinstance(expected_version, int) or isinstance(expected_version, bool)
    ):
        raise InputError(
            "expected_version must be an integer",
            errors=[{"path": "$.expected_version", "code": "int_type", "message": "integer"}],
        )


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


def validate(values: Mapping[str, Any]) -> Credential:
    """A credential from caller data; InputError lists every problem with its JSON path."""
    try:
        return Credential.model_validate(values)
    except ValidationError as error:
        errors = [
            {"path": f"$.{error_field(e)}".rstrip("."), "code": e["type"], "message": e["msg"]}
            for e in error.errors(include_input=False, include_url=False)
        ]
        raise InputError("the credential data is invalid", errors=errors) from None
