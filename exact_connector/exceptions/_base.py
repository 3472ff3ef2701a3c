"""The base of every error (code, category, hint, safe fields only) and the four family roots."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Self


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

    @classmethod
    def of(cls, errors: list[FieldError]) -> Self:
        """Every field error found, in one (each once): :meth:`at`'s message for one; for more,
        the first three with their paths, so an engine that shows only the message shows them."""
        unique = list({(e["path"], e["code"], e["message"]): e for e in errors}.values())
        if len(unique) == 1:
            return cls.at(unique[0]["path"], unique[0]["code"], unique[0]["message"])
        shown = "; ".join(f"{e['path']}: {e['message']}" for e in unique[:_SHOWN])
        more = f" (and {len(unique) - _SHOWN} more)" if len(unique) > _SHOWN else ""
        return cls(f"Invalid values at {shown}{more}.", errors=unique)


#: How many of its field errors an :class:`InputError` of several names in its message.
_SHOWN = 3


class ConfigError(ExactConnectorError):
    """Raised when the connector's configuration or the credential is unusable."""

    code = "config_error"
    category = Category.CONFIG
    hint = "Fix the connector configuration and try again."


class TransientError(ExactConnectorError):
    """Raised for failures that a later retry may fix (network, 5xx on safe methods)."""

    code = "transient"
    category = Category.TRANSIENT
    retryable = True
    hint = "Exact Online or the network had a temporary problem; run the step again later."


class SystemError_(ExactConnectorError):
    """Base for errors where a person should look before anything is retried."""

    code = "system_error"
    category = Category.SYSTEM
    hint = "Something unexpected happened; check the details before running the step again."
