"""What every error of this package has: a code, a category, a hint, and safe fields only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar


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
