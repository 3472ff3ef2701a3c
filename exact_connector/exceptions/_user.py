"""user: fix the input and run again (the :class:`InputError` family)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from exact_connector.exceptions._base import Category, ExactConnectorError, FieldError


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
    """Raised when Exact answers 404 for a record (a missing credential is CredentialNotFound)."""

    code = "not_found"
    hint = "Check the ID and the division; the record may have been deleted."


class ExactRejected(InputError):
    """Raised when Exact refuses the submitted data (HTTP 400) with its own message."""

    code = "exact_rejected"
    hint = "Read Exact's message in the error, correct the data and run the step again."


class InvalidSignature(InputError):
    """Raised when a webhook delivery is not signed with the app's webhook secret."""

    code = "invalid_signature"
    hint = "Refuse the delivery; the next poll reads the feed anyway."
