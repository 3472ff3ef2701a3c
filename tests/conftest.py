"""Suite-wide: the package's pytest plugin, and its secret scanner watching every test."""

from __future__ import annotations

import pytest

from exact_connector.testing import assert_no_secrets, find_secrets, register_secret

__all__ = ["assert_no_secrets", "find_secrets", "register_secret"]


def pytest_configure(config: pytest.Config) -> None:
    """Load the plugin from the package when its entry point is not installed (a stale install)."""
    if not config.pluginmanager.has_plugin("exact_connector"):
        config.pluginmanager.import_plugin("exact_connector.testing.plugin")


@pytest.fixture(autouse=True)
def _every_test_is_scanned(secret_scanner: None) -> None:
    """Every test runs under the secret scanner."""
