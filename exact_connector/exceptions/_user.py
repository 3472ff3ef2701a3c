"""user: fix the input and run again (the :class:`InputError` family)."""

from __future__ import annotations

from exact_connector.exceptions._base import InputError


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
