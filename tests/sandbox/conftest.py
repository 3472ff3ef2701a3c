"""Fixtures for the sandbox's tests: a sandbox on a manual clock and a client that talks to it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sandbox_harness import client_for

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox


@pytest.fixture
def clock() -> ManualClock:
    """Time that moves only when a test says so (starts 2026-01-01T00:00:00Z)."""
    return ManualClock()


@pytest.fixture
def sb(clock: ManualClock) -> Sandbox:
    """A sandbox with the default 150 rows per endpoint and limits on."""
    return Sandbox(seed=1, clock=clock)


@pytest.fixture
def tokens(sb: Sandbox) -> dict[str, str]:
    """A grant for the demo app over every division."""
    return sb.issue_tokens()


@pytest.fixture
def api(sb: Sandbox, tokens: dict[str, str]) -> Iterator[httpx.Client]:
    """A signed-in client for the sandbox."""
    with client_for(sb, tokens["access_token"]) as client:
        yield client
