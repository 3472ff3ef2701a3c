"""The public API of ``exact_connector``: curated, sorted, and every name importable."""

from __future__ import annotations

import importlib
import inspect

import pytest

import exact_connector

EXPORTED = [
    "Connector",
    "Credential",
    "ExactClient",
    "ExactConnectorError",
    "RateGovernor",
    "Sandbox",
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
    assert inspect.isclass(value) or inspect.isfunction(value)
    module = value.__module__
    assert not any(part.startswith("_") for part in module.split("."))
    assert getattr(importlib.import_module(module), name) is value


def test_the_version_is_the_manifests() -> None:
    """The version is written once, in connector.yaml; the package metadata carries it."""
    from exact_connector.manifest import load_manifest

    assert exact_connector.__version__ == load_manifest().version
