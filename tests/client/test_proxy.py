"""The explicit proxy: EXACT_CONNECTOR_PROXY routes every request; nothing else does."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from exact_connector.exceptions import ConfigError
from exact_connector.sandbox import Sandbox
from exact_connector.testing import connect
from exact_connector.urls import PROXY_ENV, configured_proxy


class _ForwardProxy(ThreadingHTTPServer):
    """A plain HTTP forward proxy on loopback that records the absolute URLs it carried."""

    daemon_threads = True

    def __init__(self) -> None:
        self.carried: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                server.carried.append(self.path)
                target = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(
                    target.hostname or "", target.port, timeout=10
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream.request(self.command, f"{target.path}?{target.query}", body, headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def proxy() -> Iterator[_ForwardProxy]:
    """A forward proxy running on loopback for the test."""
    server = _ForwardProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_every_request_goes_through_the_configured_proxy(
    proxy: _ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Token and API calls both travel through EXACT_CONNECTOR_PROXY, and Test Connect passes."""
    monkeypatch.setenv(PROXY_ENV, f"http://127.0.0.1:{proxy.server_address[1]}")
    with connect(Sandbox(auto_consent=True), tmp_path / "vault", via="loopback") as connected:
        base_url = connected.server_url  # signed in, and Test Connect passed, through the proxy
    paths = [urlsplit(url).path for url in proxy.carried]
    assert "/api/oauth2/token" in paths
    assert "/api/v1/current/Me" in paths
    assert any(path.endswith("/system/Divisions") for path in paths)
    assert all(url.startswith(base_url) for url in proxy.carried)


@pytest.mark.parametrize(
    "value",
    [
        "socks5://user:hunter2-proxy@host:1080",
        "proxy.local:8080",
        "http://proxy-noport",
        "http://h:1/path",
    ],
)
def test_a_malformed_proxy_is_a_config_error_that_does_not_echo_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only http(s)://host:port (with optional credentials) is accepted; the value is not shown."""
    monkeypatch.setenv(PROXY_ENV, value)
    with pytest.raises(ConfigError) as caught:
        configured_proxy()
    assert value not in caught.value.message
    assert "hunter2" not in str(caught.value.to_dict())


def test_no_proxy_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable, requests go direct (the environment's proxies are ignored: G14)."""
    monkeypatch.delenv(PROXY_ENV, raising=False)
    assert configured_proxy() is None
