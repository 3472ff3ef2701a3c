"""verify_and_parse: the validation POST, genuine deliveries, and forgeries refused alike."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from exact_connector.exceptions import InvalidSignature
from exact_connector.receiver import verify_and_parse

SECRET = "b6f1c0d2e3a4958677a8b9c0d1e2f3a4"
CONTENT = {
    "Topic": "Accounts",
    "ClientId": "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
    "Division": 100001,
    "Action": "Update",
    "Key": "9b1d2c3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e",
    "ExactOnlineEndpoint": "https://start.exactonline.nl/api/v1/100001/crm/Accounts",
    "EventCreatedOn": "2024-05-03T09:30:00",
}


def sign(raw: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest().upper()


def delivery(raw: str, signature: str) -> bytes:
    return f'{{"Content": {raw}, "HashCode": "{signature}"}}'.encode()


@pytest.mark.parametrize("body", [b"", b"  \r\n"], ids=["empty", "whitespace"])
def test_the_empty_validation_post_is_answered_200(body: bytes) -> None:
    """Exact's validation request needs no secret and yields no event."""
    answer = verify_and_parse(body, SECRET)
    assert (answer.validation, answer.event, answer.status) == (True, None, 200)


def test_a_genuine_delivery_is_parsed() -> None:
    """A correctly signed delivery becomes an event with the content's fields."""
    raw = json.dumps(CONTENT)
    answer = verify_and_parse(delivery(raw, sign(raw)), SecretStr(SECRET))
    assert answer.validation is False
    assert answer.event == {
        "topic": "Accounts",
        "division": 100001,
        "action": "Update",
        "key": CONTENT["Key"],
        "endpoint": CONTENT["ExactOnlineEndpoint"],
        "created_on": "2024-05-03T09:30:00",
        "client_id": CONTENT["ClientId"],
    }


def test_the_signature_covers_the_raw_content_text() -> None:
    """Spacing and key order inside Content are signed as sent, not as re-encoded."""
    raw = '{ "Division" : 100001,\n  "Topic":"Accounts" , "Action":"Delete","Key":null }'
    assert verify_and_parse(delivery(raw, sign(raw)), SECRET).event is not None
    compact = json.dumps(json.loads(raw), separators=(",", ":"))
    with pytest.raises(InvalidSignature):
        verify_and_parse(delivery(raw, sign(compact)), SECRET)


def forgeries() -> dict[str, bytes]:
    raw = json.dumps(CONTENT)
    tampered = raw.replace("Update", "Delete")
    return {
        "wrong-secret": delivery(raw, sign(raw, "another-secret")),
        "lower-case-hex": delivery(raw, sign(raw).lower()),
        "tampered-content": delivery(tampered, sign(raw)),
        "no-hashcode": f'{{"Content": {raw}}}'.encode(),
        "no-content": b'{"HashCode": "00"}',
        "not-json": b"Content=1&HashCode=2",
        "not-utf8": b"\xff\xfe{}",
        "duplicate-content": delivery(raw, sign(raw)).replace(b"{", b'{"Content": {}, ', 1),
        "trailing-data": delivery(raw, sign(raw)) + b"{}",
        "content-not-object": delivery('"x"', sign('"x"')),
        "deeply-nested": b'{"Content":' + b"[" * 1100 + b',"HashCode":"x"}',
        "very-deeply-nested": b'{"Content":' + b"[" * 40_000 + b"}",
    }


@pytest.mark.parametrize("name", list(forgeries()))
def test_forgeries_are_refused_with_the_same_words(name: str) -> None:
    """Every kind of bad delivery raises InvalidSignature saying only "invalid signature"."""
    with pytest.raises(InvalidSignature) as raised:
        verify_and_parse(forgeries()[name], SECRET)
    assert str(raised.value) == "invalid signature"
    assert raised.value.to_dict()["message"] == "invalid signature"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    """Random bytes are a validation request (if blank) or refused: never a crash, never an event."""
    if not body.strip():
        assert verify_and_parse(body, SECRET).validation is True
        return
    with pytest.raises(InvalidSignature, match=r"^invalid signature$"):
        verify_and_parse(body, SECRET)
