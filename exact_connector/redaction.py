"""Log redaction: secrets are scrubbed from the HTTP libraries' log records before any handler.

httpcore's DEBUG trace prints response headers (a sign-in redirect's ``Location`` carries the
one-time authorization code), and httpx's INFO line prints full URLs. A filter on those loggers
rewrites each record's text with bearer tokens, OAuth parameters, token JSON fields and every
live secret this process has handled masked. It only ever masks; it never drops a record.

The live secrets are a process-wide registry: the auth layer adds each client secret and token
the moment it is used (RELIABILITY.md §4.1: defence in depth behind the patterns), and a test
suite's secret scanner reads the same registry.

The filter is installed when this module is first imported, and every module that handles
secrets over HTTP or makes HTTP clients imports it (``auth``, ``oauth``, ``urls``, so ``client`` and
``runtime`` through them, and the sandbox): it is in force before any secret is handled, while
importing the package alone (``exact-connector --version``) pays for no logging machinery.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict

__all__ = ["SecretFilter", "install", "known_secrets", "redact", "remember"]

_MASK = "[redacted]"
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"),
    re.compile(
        r"(?i)((?:code|refresh_token|access_token|client_secret|password)(?:=|%3D))[^&\s'\"]+"
    ),
    re.compile(r"(?i)(\"(?:access_token|refresh_token|client_secret|code)\"\s*:\s*\")[^\"]+"),
)
#: Loggers of the HTTP stack whose records may carry secrets. Logger filters do not apply to
#: child loggers, so each is named.
_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


_MIN_LENGTH = 8  # shorter values would mask ordinary words
_CAPACITY = 4096  # tokens rotate every 10 minutes; the newest thousands are the live ones
_LIVE: OrderedDict[str, None] = OrderedDict()
#: Re-entrant: a garbage-collected connection pool may log (and so read the registry) from inside a
#: read on the same thread; a plain lock would wait for itself forever.
_LIVE_LOCK = threading.RLock()


def _after_fork() -> None:
    # A thread of the parent holding the lock at fork() would hold it in the child for good.
    global _LIVE_LOCK
    _LIVE_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def remember(secret: str) -> str:
    """Add a secret value to the registry of live secrets; returns it."""
    if len(secret) >= _MIN_LENGTH:
        with _LIVE_LOCK:
            _LIVE[secret] = None
            _LIVE.move_to_end(secret)
            while len(_LIVE) > _CAPACITY:
                _LIVE.popitem(last=False)
    return secret


def known_secrets() -> tuple[str, ...]:
    """The registered live secrets, oldest first."""
    with _LIVE_LOCK:
        return tuple(_LIVE)


def redact(text: str) -> str:
    """``text`` with every registered secret and secret-looking value replaced by ``[redacted]``."""
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, _MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + _MASK, text)
    return text


class SecretFilter(logging.Filter):
    """Rewrites a record's message (and its exception text) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format is left to the handler's own error path
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = SecretFilter()


def install() -> None:
    """Attach the filter to the HTTP stack's loggers (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


install()
