"""The public API of ``exact_connector``: curated, sorted, and every name importable."""

from __future__ import annotations

import importlib
import inspect
import types
import typing

import pytest

import exact_connector

EXPORTED = [
    "ActionError",
    "ActionResult",
    "ConfigError",
    "Connector",
    "Credential",
    "ExactClient",
    "ExactConnectorError",
    "InputError",
    "Meta",
    "ProgressEvent",
    "RateGovernor",
    "RateLimit",
    "Sandbox",
    "SystemError_",
    "TransientError",
    "Vault",
    "__version__",
    "verify_and_parse",
]


def test_the_public_api_is_exactly_the_curated_list() -> None:
    """Adding or removing a public name is a decision: this list changes with it."""
    assert exact_connector.__all__ == EXPORTED == sorted(EXPORTED)


@pytest.mark.parametrize("name", [name for name in EXPORTED if name != "__version__"])
def test_every_public_name_comes_from_a_public_module(name: str) -> None:
    """Each name resolves, to a class or function of a module an engine may import by name."""
    value = getattr(exact_connector, name)
    if isinstance(value, types.UnionType):  # a type alias such as ProgressEvent: its members count
        members = list(typing.get_args(value))
        module = members[0].__module__
    else:
        assert inspect.isclass(value) or inspect.isfunction(value)
        module = value.__module__
    assert not any(part.startswith("_") for part in module.split("."))
    assert getattr(importlib.import_module(module), name) is value


def test_the_version_is_the_manifests() -> None:
    """The version is written once, in connector.yaml; the package metadata carries it."""
    from exact_connector.manifest import load_manifest

    assert exact_connector.__version__ == load_manifest().version


def test_the_error_families_share_one_base() -> None:
    """Catching ExactConnectorError catches every family."""
    base = exact_connector.ExactConnectorError
    families = ("InputError", "ConfigError", "TransientError", "SystemError_")
    assert all(issubclass(getattr(exact_connector, name), base) for name in families)
