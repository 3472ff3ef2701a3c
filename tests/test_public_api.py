"""The public API is what ``exact_connector.__all__`` says, and every name in it resolves."""

from __future__ import annotations

import exact_connector

PUBLIC = [
    "ActionError",
    "ActionResult",
    "ConfigError",
    "Connector",
    "Credential",
    "ExactConnectorError",
    "InputError",
    "Meta",
    "ProgressEvent",
    "RateLimit",
    "SystemError_",
    "TransientError",
    "__version__",
    "verify_and_parse",
]


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert exact_connector.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    """Each name imports from the package itself (lazily, where the module is heavy)."""
    for name in PUBLIC:
        assert getattr(exact_connector, name) is not None, name


def test_the_error_families_share_one_base() -> None:
    """Catching ExactConnectorError catches every family."""
    base = exact_connector.ExactConnectorError
    families = ("InputError", "ConfigError", "TransientError", "SystemError_")
    assert all(issubclass(getattr(exact_connector, name), base) for name in families)
