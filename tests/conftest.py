"""Suite-wide fixtures: the secret scanner that watches every test.

Every secret a test registers, and every secret any sandbox mints (tokens, codes, app secrets), is
known here; after each test, every log record
(root logger at DEBUG, so httpx and httpcore too) and every exception text attached to a record is
scanned for those secrets and their base64, hex and url-encoded forms. CLI output is scanned by
:func:`assert_no_secrets`, which the CLI helpers call on everything they capture.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import urllib.parse
from collections.abc import Iterable, Iterator

import pytest

from exact_connector import redaction
from exact_connector.sandbox.oauth import SECRET_OBSERVERS


def register_secret(value: str) -> str:
    """Mark ``value`` as a secret for the scanner; returns it for convenience.

    The registry is the package's own (``exact_connector.redaction``), so every copy of this
    module, however it was imported, registers into and scans the same set.
    """
    return redaction.remember(value)


SECRET_OBSERVERS.append(register_secret)  # every token, code and app secret the sandbox mints


@functools.cache
def _forms(secret: str) -> frozenset[str]:
    raw = secret.encode()
    return frozenset(
        {
            secret,
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            raw.hex(),
            urllib.parse.quote(secret, safe=""),
            urllib.parse.quote_plus(secret),
        }
    )


#: What a secret, in any of the forms above, is made of; a run of these is one "word" of text.
_WORD = re.compile(r"[A-Za-z0-9!_.~+/%-]+")


def find_secrets(text: str, recent: Iterable[str] | None = None) -> list[str]:
    """The registered secrets (by a short prefix, never whole) that occur in ``text`` in any form.

    ``recent`` secrets (by default: all) are searched as substrings anywhere; the rest of the
    registry, which grows with every token any test mints, is matched as whole words, which keeps
    the scan linear in the text.
    """
    known = redaction.known_secrets()
    thorough = set(known if recent is None else recent)
    words = set(_WORD.findall(text))
    hits = []
    for secret in known:
        forms = _forms(secret)
        if secret in thorough:
            found = any(form in text for form in forms)
        else:
            found = not forms.isdisjoint(words)
        if found:
            hits.append(secret[:4] + "…")
    return hits


def assert_no_secrets(
    text: str, where: str = "output", recent: Iterable[str] | None = None
) -> None:
    """Fail if ``text`` holds a registered secret; the report names only a short prefix of it."""
    __tracebackhide__ = True  # the traceback would print ``text``, secret and all
    hits = find_secrets(text, recent)
    if hits:
        raise AssertionError(f"secret(s) {hits} leaked into {where}")


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
    before = set(redaction.known_secrets())
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
    recent = set(redaction.known_secrets()) - before
    assert_no_secrets("\n".join(collector.texts), "log records", recent)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Scrub every report section (captured logs and output) and failure text of secrets.

    A test that leaks fails through the scanner; pytest would then print the captured log that
    holds the leak. What CI prints must not repeat it.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [(title, redaction.redact(text)) for title, text in report.sections]
    if report.longrepr is not None:
        text = str(report.longrepr)
        cleaned = redaction.redact(text)
        if cleaned != text:
            report.longrepr = cleaned


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throw-away PostgreSQL server for the whole run (see ``tests/pg_server.py``)."""
    import pg_server  # here, not at the top: copies of this file elsewhere must still load

    if pg_server.skip_requested():
        pytest.skip(pg_server.SKIP_REASON)
    with pg_server.postgres_server() as url:
        yield url
