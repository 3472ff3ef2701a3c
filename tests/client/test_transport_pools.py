"""The default transport loads the CA bundle only when a request needs TLS (issue 12).

A CLI step against the loopback sandbox is plain HTTP: building the verified TLS context there
cost every such process ~15 ms for nothing. Plain requests get a pool whose context can complete
no handshake, so routing can never weaken verification.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator

import httpx
import pytest

from exact_connector import urls
from exact_connector.sandbox.server import serve


@pytest.fixture
def plain_origin() -> Iterator[str]:
    with serve(lambda request: httpx.Response(200, text="hello")) as base_url:
        yield base_url


@pytest.fixture
def tls_contexts(monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext]:
    """Every verified TLS context the transport asks for."""
    made: list[ssl.SSLContext] = []
    verified: Callable[[], ssl.SSLContext] = urls._tls_context

    def spy() -> ssl.SSLContext:
        made.append(verified())
        return made[-1]

    monkeypatch.setattr(urls, "_tls_context", spy)
    monkeypatch.delenv(urls.PROXY_ENV, raising=False)
    return made


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_plain_http_never_asks_for_the_verified_context(
    plain_origin: str, tls_contexts: list[ssl.SSLContext]
) -> None:
    """Two plain requests, answered on one pool; the CA bundle is not loaded for them. An https
    origin's pool is built on the verified context."""
    plain = urls.parse_server_url(plain_origin, allow_sandbox=True)
    with httpx.Client(transport=urls.default_transport(plain), trust_env=False) as client:
        assert [client.get(f"{plain_origin}/").text for _ in range(2)] == ["hello", "hello"]
        assert tls_contexts == []
    secure = urls.parse_server_url("https://start.exactonline.nl")
    verified = httpx.Client(transport=urls.default_transport(secure), trust_env=False)
    with verified, pytest.raises(httpx.ConnectError):
        verified.get(f"https://127.0.0.1:{_closed_port()}/")
    assert len(tls_contexts) == 1
    assert tls_contexts[0].verify_mode is ssl.CERT_REQUIRED


def test_the_plain_pools_context_can_complete_no_handshake() -> None:
    """It requires a certificate and checks the host name, and trusts no authority at all."""
    context = urls._no_tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() == [] and context.cert_store_stats()["x509_ca"] == 0


def test_a_configured_proxy_still_gets_the_verified_pool_at_once(
    tls_contexts: list[ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a proxy every request may be tunnelled TLS: the verified context is built at once
    (and a malformed proxy is refused there, before any request)."""
    monkeypatch.setenv(urls.PROXY_ENV, f"http://127.0.0.1:{_closed_port()}")
    transport = urls.default_transport(
        urls.parse_server_url("http://127.0.0.1:8080", allow_sandbox=True)
    )
    transport.close()
    assert isinstance(transport, httpx.HTTPTransport) and len(tls_contexts) == 1
