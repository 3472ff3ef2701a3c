"""Suite-wide: the package's pytest plugin, its secret scanner watching every test, readable ids."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator

import pytest

from exact_connector.testing import assert_no_secrets, find_secrets, register_secret

__all__ = ["assert_no_secrets", "find_secrets", "register_secret"]


def pytest_configure(config: pytest.Config) -> None:
    """Load the plugin from the package when its entry point is not installed (a stale install)."""
    if not config.pluginmanager.has_plugin("exact_connector"):
        config.pluginmanager.import_plugin("exact_connector.testing.plugin")
    # A suite started in the background of a shell script inherits SIGINT ignored, and so would
    # every command it starts: the Ctrl-C tests would then test the shell, not the commands. A
    # Python handler here is reset to the default in each child started with exec.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _every_test_is_scanned(secret_scanner: None) -> None:
    """Every test runs under the secret scanner."""


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A readable id for a value pytest would only number (a list, a dict, None, an object)."""
    if isinstance(val, str | int | float | bool):
        return None  # pytest shows these as they are
    try:
        text = json.dumps(val, sort_keys=True, default=repr)
    except ValueError:
        text = repr(val)
    return re.sub(r"[^A-Za-z0-9_.:=+/-]+", "_", text).strip("_")[:40] or argname


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throw-away PostgreSQL server for the whole run (see ``tests/pg_server.py``)."""
    import pg_server  # here, not at the top: copies of this file elsewhere must still load

    if pg_server.skip_requested():
        pytest.skip(pg_server.SKIP_REASON)
    with pg_server.postgres_server() as url:
        yield url
