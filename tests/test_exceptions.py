"""The error tree: every class has a code, a category, an exit code and a hint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exact_connector import exceptions
from exact_connector.exceptions import (
    Category,
    ExactConnectorError,
    InputError,
    OutcomeUnknown,
    RateLimited,
)

ALL = [
    cls
    for cls in vars(exceptions).values()
    if isinstance(cls, type) and issubclass(cls, ExactConnectorError)
]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_class_is_fully_described(cls: type[ExactConnectorError]) -> None:
    """Stable code, category, docstring and hint on every class."""
    assert cls.code and cls.code.islower()
    assert isinstance(cls.category, Category)
    assert cls.__doc__ and cls.hint
    assert cls.__name__ in exceptions.__all__


def test_codes_are_unique() -> None:
    """No two classes share an error code."""
    codes = [cls.code for cls in ALL]
    assert len(codes) == len(set(codes))


def test_categories_map_to_distinct_exit_codes() -> None:
    """The CLI exit code is decided by category alone."""
    assert InputError("x").exit_code == 3
    assert RateLimited("x").exit_code == 5
    assert OutcomeUnknown("x").exit_code == 6


def test_to_dict_is_the_engine_error_object() -> None:
    """The envelope error has code, category, message, retryable, hint, details and retry_at."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    payload = RateLimited("slow down", retry_at=moment).to_dict()
    assert payload == {
        "code": "rate_limited",
        "category": "transient",
        "message": "slow down",
        "retryable": True,
        "hint": RateLimited.hint,
        "details": {},
        "retry_at": "2026-01-01T00:00:00+00:00",
    }


def test_input_error_carries_field_errors() -> None:
    """Field errors travel in details.errors."""
    error = InputError("bad", errors=[{"path": "$.a", "code": "type", "message": "m"}])
    assert error.to_dict()["details"]["errors"] == [{"path": "$.a", "code": "type", "message": "m"}]
