"""The secret scanner: does any registered secret, in any common encoding, occur in a text?

Every secret a test registers (:func:`register_secret`), and every secret any sandbox mints
(tokens, codes, app secrets: each :class:`~exact_connector.sandbox.Sandbox` reports them to
``redaction.remember`` unless told otherwise), is in the package's one registry. A text is searched
for each of them and for their base64, hex and url-encoded forms; a report names only a short
prefix. :func:`scanning` captures every log record (root logger at DEBUG) while it is open and
scans them when it closes; the pytest plugin (:mod:`exact_connector.testing.plugin`) wraps it in
the ``secret_scanner`` fixture.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from exact_connector import redaction

if TYPE_CHECKING:
    import httpx

__all__ = [
    "LogCollector",
    "assert_no_secrets",
    "find_secrets",
    "register_answer",
    "register_secret",
    "register_sent",
    "scanning",
]

#: The form fields of a request that carry a secret, and the token answer's secret fields.
_SENT_FIELDS = ("client_secret", "refresh_token", "code")
_ISSUED_FIELDS = ("access_token", "refresh_token")


def register_secret(value: str) -> str:
    """Mark ``value`` as a secret for the scanner (and for log redaction); returns it."""
    return redaction.remember(value)


def register_sent(body: bytes) -> None:
    """Register the secrets a request's form body carries: client secret, refresh token, code."""
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if b"=" in body else {}
    for name in _SENT_FIELDS:
        for value in form.get(name, []):
            register_secret(value)


def register_answer(path: str, response: httpx.Response) -> list[tuple[str, str]]:
    """Register the secrets an answer to ``path`` carries: the tokens of an answer from the token
    endpoint and a code in a redirect. Returns the tokens as ``(field, value)``."""
    issued: list[tuple[str, str]] = []
    if path == "/api/oauth2/token":
        try:
            body = json.loads(response.read())
        except ValueError:
            body = None
        if isinstance(body, dict):
            issued = [(n, body[n]) for n in _ISSUED_FIELDS if isinstance(body.get(n), str)]
    for _, value in issued:
        register_secret(value)
    location = urllib.parse.urlsplit(response.headers.get("location", ""))
    for code in urllib.parse.parse_qs(location.query).get("code", []):
        register_secret(code)
    return issued


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


class LogCollector(logging.Handler):
    """Keeps the formatted text of every log record it sees (a record that fails: a note)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception as error:  # a record that cannot format is itself a finding
            self.texts.append(f"unformattable record from {record.name}: {type(error).__name__}")


@contextmanager
def scanning() -> Iterator[None]:
    """Capture all logging at DEBUG inside the block, then scan it for registered secrets."""
    before = set(redaction.known_secrets())
    collector = LogCollector()
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
