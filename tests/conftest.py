"""Suite-wide fixtures: the secret scanner that watches every test.

Every secret a test registers, and every secret any sandbox mints (tokens, codes, app secrets), is
known here; after each test, every log record
(root logger at DEBUG, so httpx and httpcore too) and every exception text attached to a record is
scanned for those secrets and their base64, hex and url-encoded forms. CLI output is scanned by
:func:`assert_no_secrets`, which the CLI helpers call on everything they capture.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from collections.abc import Iterator

import pytest

from exact_connector.sandbox.oauth import SECRET_OBSERVERS

_SECRETS: set[str] = set()
_MIN_SECRET = 8  # shorter strings would match ordinary text by chance


def register_secret(value: str) -> str:
    """Mark ``value`` as a secret for the scanner; returns it for convenience."""
    if len(value) >= _MIN_SECRET:
        _SECRETS.add(value)
    return value


SECRET_OBSERVERS.append(register_secret)  # every token, code and app secret the sandbox mints


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {
        secret,
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
    }


def find_secrets(text: str) -> list[str]:
    """The registered secrets (by a short prefix, never whole) that occur in ``text`` in any form."""
    hits = []
    for secret in list(_SECRETS):
        if any(form in text for form in _forms(secret)):
            hits.append(secret[:4] + "…")
    return hits


def assert_no_secrets(text: str, where: str = "output") -> None:
    """Fail if ``text`` holds a registered secret."""
    hits = find_secrets(text)
    assert not hits, f"secret(s) {hits} leaked into {where}"


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception as error:  # a record that cannot format is itself a finding
            self.texts.append(f"unformattable record from {record.name}: {type(error).__name__}")


@pytest.fixture(autouse=True)
def secret_scanner() -> Iterator[None]:
    """Capture all logging at DEBUG during the test, then scan it for registered secrets."""
    collector = _Collector()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(collector)
        root.setLevel(previous)
    assert_no_secrets("\n".join(collector.texts), "log records")
