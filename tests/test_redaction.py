"""Log redaction on the HTTP stack's loggers, and the secret scanner that checks the whole suite."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator

import pytest

from exact_connector import redaction
from exact_connector.redaction import redact
from exact_connector.testing import find_secrets, register_secret


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("location: http://127.0.0.1:1/cb?code=o8ly%21IAAAAD&state=x", "o8ly%21IAAAAD"),
        ("[(b'authorization', b'Bearer AAEAAsecretvalue')]", "AAEAAsecretvalue"),
        ("grant_type=refresh_token&refresh_token=abc!IAAAAxyz&client_id=1", "abc!IAAAAxyz"),
        ("client_secret%3Dtopsecret1", "topsecret1"),
        ('{"access_token": "tok123456", "token_type": "bearer"}', "tok123456"),
    ],
)
def test_redact_masks_every_secret_shape(text: str, secret: str) -> None:
    """Bearer tokens, OAuth parameters and JSON token fields are masked; the rest stays."""
    cleaned = redact(text)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_httpcore_debug_records_are_redacted_before_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A child logger of httpcore emitting a Location with a code reaches handlers masked."""
    code = register_secret("Zq9!IAAAAredactionprobe")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("httpcore.http11").debug(
            "receive_response_headers.complete return_value=%s", f"location: /cb?code={code}"
        )
    assert code not in caplog.text
    assert "code=[redacted]" in caplog.text


def test_the_scanner_finds_a_secret_in_any_encoding() -> None:
    """The suite's scanner recognises a registered secret raw, base64, hex and url-encoded."""
    secret = register_secret("s3cr3t/with+chars")
    assert find_secrets("nothing here") == []
    for leaked in (
        secret,
        "czNjcjN0L3dpdGgrY2hhcnM",
        secret.encode().hex(),
        "s3cr3t%2Fwith%2Bchars",
    ):
        assert find_secrets(f"prefix {leaked} suffix") == ["s3cr…"]


def test_a_record_logged_in_the_middle_of_a_registry_read_is_masked_not_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool closed by the garbage collector logs from inside a registry read on the same thread
    (it hung the e2e suite): the log filter reads the registry again instead of deadlocking."""
    secret = register_secret("finalizer-" + "s" * 16)
    nested: list[str] = []

    class FinalizerMidRead(OrderedDict[str, None]):
        def __iter__(self) -> Iterator[str]:
            if not nested:  # the finalizer runs once, on this thread, while the lock is held
                nested.append("stuck")
                if redaction._LIVE_LOCK.acquire(timeout=2):  # a plain Lock waits forever here
                    redaction._LIVE_LOCK.release()
                    nested[0] = redact(f"closing {secret}")
            return super().__iter__()

    monkeypatch.setattr(redaction, "_LIVE", FinalizerMidRead(redaction._LIVE))
    assert secret in redaction.known_secrets()
    assert nested == ["closing [redacted]"]
