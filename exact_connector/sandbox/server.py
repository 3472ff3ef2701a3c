"""The sandbox on a real socket: a small threaded HTTP/1.1 server on 127.0.0.1.

Each request becomes an ``httpx.Request`` for the app (so the same object serves in-process tests
and loopback ones), and each answer is written with one ``sendall`` of headers and body (a
trickling body, an injected fault, follows in its own pieces), with
Nagle's algorithm off, so keep-alive round trips cost microseconds, not the 40 ms of a delayed ACK.
A fault that drops the answer closes the socket without a byte. Shutdown closes open keep-alive
connections too, so no thread or socket outlives :func:`serve`.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from exact_connector.sandbox.wire import dumps, error_body

__all__ = ["SandboxServer", "serve"]

App = Callable[[httpx.Request], httpx.Response]
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})
_MAX_BODY = 16 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._send(httpx.Response(413, content=dumps(error_body("The request is too large."))))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or self.server.base_url.removeprefix("http://")
        headers = [(name, value) for name, value in self.headers.items() if name.lower() != "host"]
        request = httpx.Request(
            self.command,
            f"http://{host}{self.path}",
            headers=[("Host", host), *headers],
            content=body,
        )
        try:
            response = self.server.app(request)
        except httpx.TransportError:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except (
            Exception
        ) as error:  # a bug in the sandbox must not kill the connection thread silently
            print(f"sandbox: internal error: {type(error).__name__}", file=sys.stderr)
            response = httpx.Response(500, content=dumps(error_body("A problem has occurred.")))
        self._send(response)

    def _send(self, response: httpx.Response) -> None:
        try:
            chunks: Iterator[bytes] = iter([response.content])
            length = len(response.content)
        except httpx.ResponseNotRead:  # a streamed (trickling) body declares its length
            chunks, length = response.iter_raw(), int(response.headers["content-length"])
        reason = response.reason_phrase or HTTPStatus(response.status_code).phrase
        lines = [f"HTTP/1.1 {response.status_code} {reason}"]
        if "date" not in response.headers:
            lines.append(f"Date: {formatdate(usegmt=True)}")
        lines += [
            f"{name}: {value}"
            for name, value in response.headers.multi_items()
            if name.lower() not in _HOP_BY_HOP
        ]
        lines.append(f"Content-Length: {length}")
        if self.close_connection or self.headers.get("Connection", "").lower() == "close":
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + next(chunks, b""))
        for chunk in chunks:
            self.wfile.write(chunk)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_MERGE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo print what matters themselves."""


class SandboxServer(ThreadingHTTPServer):
    """A threaded HTTP server around a sandbox app; tracks its connections to close them."""

    # Daemon connection threads never hold the process open; close_connections() wakes them and
    # joins them (bounded), so none outlives serve() either.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self, timeout: float = 5.0) -> None:
        """End every connection thread: wake those waiting on keep-alive, then join them all."""
        with self._connections_lock:
            open_now, handlers = list(self._connections), list(self._handlers)
        for connection in open_now:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in handlers:
            thread.join(timeout)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self.server_address[:2]
        name = host.decode("ascii") if isinstance(host, bytes | bytearray) else host
        return f"http://{name}:{port}"


@contextmanager
def serve(app: App, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` on loopback for the ``with`` block; yields the base URL."""
    server = SandboxServer((host, port), app)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
