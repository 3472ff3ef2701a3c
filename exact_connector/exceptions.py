"""The whole error tree of exact-connector.

Families are grouped by what the caller should do next, and each family is a *category*:

    ExactConnectorError
    ├── InputError                      user: fix the input and run again
    │   ├── UnknownEndpoint
    │   ├── MethodNotSupported
    │   ├── DivisionNotAllowed
    │   ├── NotFound
    │   ├── ExactRejected               Exact refused the data (400 validation)
    │   └── InvalidSignature            a webhook delivery's HashCode does not match
    ├── ConfigError                     config: fix the connector's configuration
    │   ├── ManifestError
    │   ├── InvalidServerUrl
    │   ├── HostNotAllowed
    │   │   ├── RedirectNotAllowed
    │   │   └── PaginationLinkRejected
    │   ├── InvalidClient
    │   ├── ReauthRequired
    │   ├── CredentialNotFound
    │   ├── CredentialExists
    │   ├── AccessDenied                Exact answered 403 (scope, licence, blocked user)
    │   └── VaultKeyError
    │       ├── VaultLocked
    │       ├── VaultKeyMismatch
    │       ├── VaultKeyUnknown
    │       └── VaultPermissions
    ├── TransientError                  transient: retry later, possibly at ``retry_at``
    │   ├── RateLimited
    │   │   └── DailyRateLimited
    │   ├── ErrorBudgetExhausted
    │   ├── RequestTimeout
    │   ├── TokenRefreshInProgress
    │   ├── ConcurrentUpdate
    │   └── VaultBusy
    └── SystemError_                    system: stop and look before doing anything else
        ├── OutcomeUnknown
        ├── ExactError
        ├── TokenResponseInvalid
        ├── PaginationError
        ├── VaultIntegrityError
        │   ├── VaultCorrupt
        │   └── VaultUnsupportedFormat
        └── VaultIOError

Every class has a stable ``code`` (the engine's error code), a ``category``, ``retryable``, and a
one-line ``hint``. Messages are built by this package from safe fields only; third-party exceptions
are re-raised ``from None`` so their text (which may hold a token or a URL with a secret) never
travels with ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

__all__ = [
    "EXIT_CODES",
    "AccessDenied",
    "Category",
    "ConcurrentUpdate",
    "ConfigError",
    "CredentialExists",
    "CredentialNotFound",
    "DailyRateLimited",
    "DivisionNotAllowed",
    "ErrorBudgetExhausted",
    "ExactConnectorError",
    "ExactError",
    "ExactRejected",
    "FieldError",
    "HostNotAllowed",
    "InputError",
    "InvalidClient",
    "InvalidServerUrl",
    "InvalidSignature",
    "ManifestError",
    "MethodNotSupported",
    "NotFound",
    "OutcomeUnknown",
    "PaginationError",
    "PaginationLinkRejected",
    "RateLimited",
    "ReauthRequired",
    "RedirectNotAllowed",
    "RequestTimeout",
    "SystemError_",
    "TokenRefreshInProgress",
    "TokenResponseInvalid",
    "TransientError",
    "UnknownEndpoint",
    "VaultBusy",
    "VaultCorrupt",
    "VaultIOError",
    "VaultIntegrityError",
    "VaultKeyError",
    "VaultKeyMismatch",
    "VaultKeyUnknown",
    "VaultLocked",
    "VaultPermissions",
    "VaultUnsupportedFormat",
    "exit_code_for",
]


class Category(StrEnum):
    """What the caller should do about an error."""

    USER = "user"
    CONFIG = "config"
    TRANSIENT = "transient"
    SYSTEM = "system"


#: CLI exit codes by category. 1 is an unexpected bug, 2 is argparse's usage error.
EXIT_CODES: dict[Category, int] = {
    Category.USER: 3,
    Category.CONFIG: 4,
    Category.TRANSIENT: 5,
    Category.SYSTEM: 6,
}

FieldError = dict[str, str]
"""One validation problem: ``{"path": "$.data.Quantity", "code": "type", "message": "..."}``."""


class ExactConnectorError(Exception):
    """Base of every error this package raises on purpose."""

    code: ClassVar[str] = "error"
    category: ClassVar[Category] = Category.SYSTEM
    retryable: ClassVar[bool] = False
    hint: ClassVar[str] = "See the message for details."

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        retry_at: datetime | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_at = retry_at
        if hint is not None:
            self.hint = hint  # type: ignore[misc]  # an instance may sharpen its class hint

    @property
    def exit_code(self) -> int:
        """The CLI exit code for this error's category."""
        return EXIT_CODES[self.category]

    def to_dict(self) -> dict[str, Any]:
        """The engine-facing error object: safe fields only."""
        payload: dict[str, Any] = {
            "code": self.code,
            "category": self.category.value,
            "message": self.message,
            "retryable": self.retryable,
            "hint": self.hint,
            "details": self.details,
        }
        if self.retry_at is not None:
            payload["retry_at"] = self.retry_at.isoformat()
        return payload

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


def exit_code_for(error: BaseException) -> int:
    """The CLI exit code for any exception: 1 for anything that is not ours."""
    return error.exit_code if isinstance(error, ExactConnectorError) else 1


# --- user: fix the input -----------------------------------------------------------------------


class InputError(ExactConnectorError):
    """Raised when an input fails its schema or a local check; carries every field error."""

    code = "invalid_input"
    category = Category.USER
    hint = "Correct the fields listed in details.errors and run the step again."

    def __init__(
        self,
        message: str,
        *,
        errors: list[FieldError] | None = None,
        details: Mapping[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        merged = dict(details or {})
        if errors is not None:
            merged["errors"] = errors
        super().__init__(message, details=merged, hint=hint)
        self.errors: list[FieldError] = list(errors or [])

    @classmethod
    def at(cls, path: str, code: str, message: str) -> Self:
        """An error about one field: ``Invalid value at $.id: expected a GUID.``"""
        return cls(
            f"Invalid value at {path}: {message}.",
            errors=[{"path": path, "code": code, "message": message}],
        )


class UnknownEndpoint(InputError):
    """Raised when a ``service/Endpoint`` is not in the catalog (or malformed)."""

    code = "unknown_endpoint"
    hint = "Pick an endpoint from the list, or type one as service/Endpoint, e.g. crm/Accounts."


class MethodNotSupported(InputError):
    """Raised when an endpoint does not support the HTTP method an action needs."""

    code = "method_not_supported"
    hint = "Choose an endpoint that supports this operation (the dropdown lists only those)."


class DivisionNotAllowed(InputError):
    """Raised when a division is not among the credential's allowed divisions."""

    code = "division_not_allowed"
    hint = "Pick a division this connection was granted, or re-authorize to grant it."


class NotFound(InputError):
    """Raised when Exact answers 404 for a record (or a credential lookup misses)."""

    code = "not_found"
    hint = "Check the ID and the division; the record may have been deleted."


class ExactRejected(InputError):
    """Raised when Exact refuses the submitted data (HTTP 400) with its own message."""

    code = "exact_rejected"
    hint = "Read Exact's message in the error, correct the data and run the step again."


# --- config: fix the configuration ---------------------------------------------------------------


class InvalidSignature(InputError):
    """Raised when a webhook delivery is not signed with the app's webhook secret."""

    code = "invalid_signature"
    hint = "Refuse the delivery; the next poll reads the feed anyway."


class ConfigError(ExactConnectorError):
    """Raised when the connector's configuration or the credential is unusable."""

    code = "config_error"
    category = Category.CONFIG
    hint = "Fix the connector configuration and try again."


class ManifestError(ConfigError):
    """Raised when connector.yaml or a schema is invalid; carries every error with its path."""

    code = "manifest_invalid"
    hint = "Fix each listed problem in the manifest or schema file named by its path."

    def __init__(self, message: str, *, errors: list[FieldError]) -> None:
        super().__init__(message, details={"errors": errors})
        self.errors = errors


class InvalidServerUrl(ConfigError):
    """Raised when a Server URL is not one of Exact Online's regional hosts."""

    code = "invalid_server_url"
    hint = "Choose one of the listed Exact Online regions, e.g. https://start.exactonline.nl."


class HostNotAllowed(ConfigError):
    """Raised before sending a request to a host outside the allow-list."""

    code = "host_not_allowed"
    hint = "Requests only go to the credential's Exact Online region; check the Server URL."


class RedirectNotAllowed(HostNotAllowed):
    """Raised when Exact (or anything posing as it) answers with a redirect."""

    code = "redirect_not_allowed"
    hint = "Redirects are never followed; check the Server URL and whether the token is valid."


class PaginationLinkRejected(HostNotAllowed):
    """Raised when a ``__next`` link points outside the endpoint being listed."""

    code = "pagination_link_rejected"
    hint = "The server sent a paging link to another host or path; the list was stopped."


class InvalidClient(ConfigError):
    """Raised when Exact rejects the client id or client secret (``invalid_client``)."""

    code = "invalid_client"
    hint = "Check the Client ID and Client Secret against the app in Exact's App Center."


class ReauthRequired(ConfigError):
    """Raised when the refresh token is dead; only a new sign-in (consent) can fix it."""

    code = "reauth_required"
    hint = (
        "Sign in again: exact-connector credentials reauthorize NAME (or Reconnect in the engine)."
    )


class CredentialNotFound(ConfigError):
    """Raised when no credential with that id or name exists in this workspace."""

    code = "credential_not_found"
    hint = "List credentials with: exact-connector credentials list."


class CredentialExists(ConfigError):
    """Raised when a connector name is already taken in the workspace."""

    code = "credential_exists"
    hint = "Connector names are unique per workspace; choose another name or remove the old one."


class AccessDenied(ConfigError):
    """Raised when Exact answers 403: scope, licence, blocked user or division not granted."""

    code = "access_denied"
    hint = "Check the app's scopes and the divisions granted at consent; re-authorize if needed."


class VaultKeyError(ConfigError):
    """Base for problems with the vault's master key."""

    code = "vault_key_error"
    hint = "Set EXACT_CONNECTOR_VAULT_KEY or run: exact-connector vault init."


class VaultLocked(VaultKeyError):
    """Raised when no master key is available: the vault stays closed (never plaintext)."""

    code = "vault_locked"


class VaultKeyMismatch(VaultKeyError):
    """Raised at open when the key does not decrypt the vault's key-check record."""

    code = "vault_key_mismatch"
    hint = "This is not the key this vault was created with; use the original key."


class VaultKeyUnknown(VaultKeyError):
    """Raised when a blob names a key id this process does not hold."""

    code = "vault_key_unknown"
    hint = "Distribute the new key to every process before rotating (see vault rotate-key)."


class VaultPermissions(VaultKeyError):
    """Raised when the vault, its directory or the key file is unsafe or unreadable."""

    code = "vault_permissions"
    hint = "The vault directory must be 0700 and its files 0600, owned by this user, no symlinks."


# --- transient: retry later ----------------------------------------------------------------------


class TransientError(ExactConnectorError):
    """Raised for failures that a later retry may fix (network, 5xx on safe methods)."""

    code = "transient"
    category = Category.TRANSIENT
    retryable = True
    hint = "Exact Online or the network had a temporary problem; run the step again later."


class RateLimited(TransientError):
    """Raised when the minute budget cannot refill before the step's deadline."""

    code = "rate_limited"
    hint = "Exact's rate limit was reached; the step can be retried at retry_at."


class DailyRateLimited(RateLimited):
    """Raised when the division's daily call budget is spent; fails fast until the reset."""

    code = "rate_limited_daily"
    hint = "The division used all of today's API calls; retry after retry_at (UTC midnight)."


class ErrorBudgetExhausted(TransientError):
    """Raised locally before Exact's 10-errors-per-endpoint-per-hour lockout would trigger."""

    code = "error_budget_protect"
    hint = "Too many failed calls on this endpoint this hour; fix the cause, retry after retry_at."


class RequestTimeout(TransientError):
    """Raised when a request or the step's overall deadline ran out."""

    code = "timeout"
    hint = "Exact Online did not answer in time; retry the step later."


class TokenRefreshInProgress(TransientError):
    """Raised when another worker holds the refresh lock for longer than the wait allows."""

    code = "token_refresh_in_progress"
    hint = "Another worker is refreshing this connection's token; retry in a few seconds."


class ConcurrentUpdate(TransientError):
    """Raised when a compare-and-swap write finds the record changed since it was read."""

    code = "concurrent_update"
    hint = "Another worker changed this credential at the same time; re-read it and retry."


class VaultBusy(TransientError):
    """Raised when the vault database stayed locked by another writer past the busy timeout."""

    code = "vault_busy"
    hint = "The credential store is busy; retry in a few seconds."


# --- system: stop and look -----------------------------------------------------------------------


class SystemError_(ExactConnectorError):
    """Base for errors where a person should look before anything is retried."""

    code = "system_error"
    category = Category.SYSTEM
    hint = "Something unexpected happened; check the details before running the step again."


class OutcomeUnknown(SystemError_):
    """Raised when a write may or may not have reached Exact (lost response, 5xx on POST)."""

    code = "outcome_unknown"
    hint = "The write may have been applied: check in Exact Online before running it again."


class ExactError(SystemError_):
    """Raised for an Exact response no other class describes; keeps Exact's message."""

    code = "exact_error"
    hint = "Exact Online returned an unexpected answer; see its message and the request id."


class TokenResponseInvalid(SystemError_):
    """Raised when the token endpoint's answer is malformed; its body is never echoed."""

    code = "token_response_invalid"
    hint = "The token endpoint sent an unusable answer; the stored tokens were kept unchanged."


class PaginationError(SystemError_):
    """Raised when paging loops or exceeds its page cap."""

    code = "pagination_error"
    hint = "Paging was stopped to avoid a loop; narrow the list with a filter or a limit."


class VaultIntegrityError(SystemError_):
    """Raised when a stored secret fails authentication (tampered, swapped or moved)."""

    code = "vault_integrity"
    hint = "The stored value was modified outside exact-connector; re-enter the credential."


class VaultCorrupt(VaultIntegrityError):
    """Raised when a blob or the database file is structurally broken."""

    code = "vault_corrupt"
    hint = "Restore the vault from a backup, or remove and re-add the affected credential."


class VaultUnsupportedFormat(VaultIntegrityError):
    """Raised when a blob carries a format version this release cannot read."""

    code = "vault_unsupported_format"
    hint = "The vault was written by a newer exact-connector; upgrade before opening it."


class VaultIOError(SystemError_):
    """Raised when the vault cannot be written (disk full, I/O error)."""

    code = "vault_io"
    hint = "Free disk space or fix the storage, then retry; the previous record is intact."
