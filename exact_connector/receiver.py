"""The webhook receiver an engine mounts: ``verify_and_parse(body_bytes, secret)``.

Exact Online first POSTs an empty body to a new callback and keeps the subscription only if it
answers 200; later deliveries are ``{"Content": {…}, "HashCode": "…"}`` where HashCode is the
upper-case hex HMAC-SHA256 of the raw ``Content`` text, keyed with the app's webhook secret
(API-FACTS, "Webhooks and the sync change feed"). The signature is checked over the bytes exactly
as they arrived, never over a re-encoding, and compared in constant time. Whatever is wrong with a
delivery, the answer is the same "invalid signature": a forger learns nothing. A verified event
holds no record data; :meth:`Triggers.wake` turns it into the polls that read the change (told
which credential's callback received it: the deliveries of two subscriptions are identical).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from exact_connector.exceptions import InvalidSignature

__all__ = ["Delivery", "verify_and_parse"]

_MAX_BODY = 64 * 1024
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"
#: Content field -> event field.
_FIELDS = {
    "Topic": "topic",
    "Division": "division",
    "Action": "action",
    "Key": "key",
    "ExactOnlineEndpoint": "endpoint",
    "EventCreatedOn": "created_on",
    "ClientId": "client_id",
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """What came in: Exact's validation request (answer 200, nothing else), or a verified event."""

    validation: bool
    event: dict[str, Any] | None = None

    @property
    def status(self) -> int:
        """The HTTP status to answer with."""
        return 200


def verify_and_parse(body: bytes, secret: str | SecretStr) -> Delivery:
    """Check one POST to the callback; an :class:`InvalidSignature` for anything not genuine."""
    if not body.strip():
        return Delivery(validation=True)
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not key or len(body) > _MAX_BODY:
        raise _invalid()
    try:
        text = body.decode("utf-8")
        members = _top_level(text)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: deep nesting
        raise _invalid() from None
    raw, given = members.get("Content"), members.get("HashCode")
    if raw is None or given is None:
        raise _invalid()
    digest = hmac.new(key.encode("utf-8"), raw[1].encode("utf-8"), hashlib.sha256).hexdigest()
    signature = given[0] if isinstance(given[0], str) else ""
    if not hmac.compare_digest(digest.upper().encode(), signature.encode("utf-8", "replace")):
        raise _invalid()
    content = raw[0]
    if not isinstance(content, dict) or not isinstance(content.get("Topic"), str):
        raise _invalid()
    event = {mine: content.get(theirs) for theirs, mine in _FIELDS.items()}
    if not isinstance(event["division"], int) or isinstance(event["division"], bool):
        raise _invalid()
    return Delivery(validation=False, event=event)


def _top_level(text: str) -> dict[str, tuple[Any, str]]:
    """The members of a JSON object: name -> (value, the value's raw text as it arrived)."""
    members: dict[str, tuple[Any, str]] = {}
    position = _skip(text, 0)
    if text[position : position + 1] != "{":
        raise ValueError("not an object")
    position = _skip(text, position + 1)
    if text[position : position + 1] == "}":
        return members
    while True:
        if text[position : position + 1] != '"':
            raise ValueError("member name expected")
        name, position = _DECODER.raw_decode(text, position)
        position = _skip(text, position)
        if text[position : position + 1] != ":":
            raise ValueError("colon expected")
        start = _skip(text, position + 1)
        value, position = _DECODER.raw_decode(text, start)
        if name in members:
            raise ValueError("duplicate member")
        members[name] = (value, text[start:position])
        position = _skip(text, position)
        if text[position : position + 1] == "}":
            if text[_skip(text, position + 1) :]:
                raise ValueError("trailing data")
            return members
        if text[position : position + 1] != ",":
            raise ValueError("comma expected")
        position = _skip(text, position + 1)


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in _WHITESPACE:
        position += 1
    return position


def _invalid() -> InvalidSignature:
    return InvalidSignature("invalid signature")
