"""The pytest plugin of exact-connector (entry point ``pytest11``): the scanner, scrubbed reports.

``secret_scanner`` fails a test whose log records hold a registered secret; a suite makes it
autouse from its own conftest. Every report section and failure text is scrubbed of registered
secrets, so what CI prints never repeats a leak the scanner caught.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from types import ModuleType

import pytest

from exact_connector import redaction
from exact_connector.testing import scanner as scanner_module
from exact_connector.testing.scanner import scanning

__all__ = ["pytest_runtest_makereport", "scanner", "secret_scanner"]


@pytest.fixture(scope="session")
def scanner() -> ModuleType:
    """The scanner module: ``register_secret``, ``find_secrets``, ``assert_no_secrets``."""
    return scanner_module


@pytest.fixture
def secret_scanner() -> Iterator[None]:
    """Capture all logging at DEBUG during the test, then scan it for registered secrets."""
    with scanning():
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Scrub every report section (captured logs and output) and failure text of secrets."""
    report = yield
    report.sections = [(title, redaction.redact(text)) for title, text in report.sections]
    if report.longrepr is not None:
        text = str(report.longrepr)
        cleaned = redaction.redact(text)
        if cleaned != text:
            report.longrepr = cleaned
    return report
