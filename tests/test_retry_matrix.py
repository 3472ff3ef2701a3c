"""The retry matrix of RELIABILITY.md §4.3, read straight off ``retries.MATRIX``."""

from __future__ import annotations

import ssl

import httpx
import pytest

from exact_connector import retries
from exact_connector.exceptions import ConfigError

#: (what happened, method, resolution): one row per cell of §4.3 that the table decides.
CELLS = [
    ("not_sent", "GET", "retry"),
    ("not_sent", "POST", "retry"),
    ("maybe_sent", "GET", "retry"),
    ("maybe_sent", "DELETE", "retry"),
    ("maybe_sent", "POST", "unknown"),
    ("throttled", "PUT", "retry"),
    ("throttled", "POST", "retry"),
    ("server_error", "PUT", "retry"),
    ("server_error", "POST", "unknown"),
    ("rejected", "GET", "fail"),
    ("rejected", "POST", "fail"),
    ("absent", "DELETE", "return"),
    ("answered", "POST", "return"),
    ("tls_refused", "GET", "fail"),
    ("unsendable", "GET", "fail"),
    ("overdue", "GET", "fail"),
    ("overdue", "POST", "unknown"),
]


@pytest.mark.parametrize(
    ("happened", "method", "expected"), CELLS, ids=[f"{h}-{m}" for h, m, _ in CELLS]
)
def test_each_cell_of_the_matrix_resolves_as_reliability_says(
    happened: retries.Happened, method: str, expected: str
) -> None:
    """Every transport fate and status class resolves as §4.3 says, POST apart from the rest."""
    assert retries.resolve(method, happened) == expected


RESPONSES = [
    ("GET", 200, False, "answered"),
    ("DELETE", 404, True, "absent"),
    ("DELETE", 404, False, "rejected"),
    ("GET", 404, True, "rejected"),
    ("GET", 429, False, "throttled"),
    ("GET", 503, False, "server_error"),
    ("GET", 501, False, "rejected"),
    ("GET", 302, False, "rejected"),
]


@pytest.mark.parametrize(
    ("method", "status", "maybe", "expected"),
    RESPONSES,
    ids=[f"{m}-{s}-{'maybe-processed' if p else 'fresh'}" for m, s, p, _ in RESPONSES],
)
def test_a_response_is_classified_by_status_and_history(
    method: str, status: int, maybe: bool, expected: str
) -> None:
    """A 404 means 'absent' only to a DELETE whose earlier attempt may have been processed."""
    assert retries.on_response(method, status, maybe) == expected


def test_a_refused_certificate_anywhere_in_the_cause_chain_is_configuration() -> None:
    """TLS refusal is found through ``__cause__`` and is a ConfigError, never retried."""
    error = httpx.ConnectError("handshake failed")
    error.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    assert retries.on_transport_error(error) == "tls_refused"
    assert isinstance(retries.tls_refused(error), ConfigError)
    assert retries.on_transport_error(httpx.ConnectError("refused")) == "not_sent"
    assert retries.on_transport_error(httpx.ReadTimeout("slow")) == "maybe_sent"
