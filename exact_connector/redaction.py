"""Log redaction: secrets are scrubbed from the HTTP libraries' log records before any handler.

httpcore's DEBUG trace prints response headers (a sign-in redirect's ``Location`` carries the
one-time authorization code), and httpx's INFO line prints full URLs. A filter on those loggers
rewrites each record's text with bearer tokens, OAuth parameters and token JSON fields masked.
It only ever masks; it never drops a record.
"""

from __future__ import annotations

import logging
import re

__all__ = ["SecretFilter", "install", "redact"]

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


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[redacted]``."""
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
