"""system: stop and look before doing anything else (the :class:`SystemError_` family)."""

from __future__ import annotations

from exact_connector.exceptions._base import SystemError_


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
