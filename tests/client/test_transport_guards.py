"""G10, G12-G15: deadlines, cancellation, redirects, TLS, proxies and trickling bodies."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import inspect
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from client_harness import (
    ACCOUNTS,
    DIVISION,
    Recorder,
    World,
    create_account,
    get_accounts,
    loopback_world,
    wait_for,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exact_connector.client import ExactClient
from exact_connector.clock import SystemClock
from exact_connector.exceptions import (
    ConfigError,
    OutcomeUnknown,
    RedirectNotAllowed,
    RequestTimeout,
)
from exact_connector.sandbox import Sandbox, SandboxServer, serve

PROC_FD = Path("/proc/self/fd")


def _hang_api(world: World, release: threading.Event) -> None:
    """API requests wait (server side) until ``release`` is set; OAuth is unaffected."""

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.url.path.startswith("/api/v1/"):
            release.wait(10)

    world.app.tamper = tamper


def _socket_fds() -> set[str]:
    found = set()
    for entry in PROC_FD.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


# -- G10 --------------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.skipif(not PROC_FD.exists(), reason="counts sockets through /proc")
def test_g10_a_cancelled_step_ends_by_its_deadline_leaving_no_threads_or_sockets(
    tmp_path: Path,
) -> None:
    """The engine cancels the awaiting task; the worker stops at the deadline; nothing lingers."""
    threads_before, sockets_before = set(threading.enumerate()), _socket_fds()
    release = threading.Event()
    outcome: list[BaseException] = []
    with loopback_world(tmp_path / "v", clock=SystemClock()) as world:
        _hang_api(world, release)
        client = world.client()

        def step() -> None:
            try:
                get_accounts(client, deadline=world.clock.now() + 0.5)
            except RequestTimeout as error:
                outcome.append(error)

        async def engine() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(step), timeout=0.1)

        started = time.monotonic()
        asyncio.run(engine())  # returns once the worker thread has finished
        elapsed = time.monotonic() - started
        release.set()
        client.close()
    assert elapsed < 2.0
    assert [type(error) for error in outcome] == [RequestTimeout]
    assert wait_for(lambda: set(threading.enumerate()) <= threads_before)
    assert wait_for(lambda: _socket_fds() <= sockets_before)


# -- G12 --------------------------------------------------------------------------------------------


def test_g12_a_redirect_to_another_host_is_not_followed(world: World) -> None:
    """302 to evil.example: REDIRECT_NOT_ALLOWED; nothing (and no token) goes there."""
    world.sb.faults.add("redirect", path_contains="crm/Accounts")
    with pytest.raises(RedirectNotAllowed) as caught:
        get_accounts(world.client())
    assert caught.value.code == "redirect_not_allowed"
    assert [seen.url.host for seen in world.app.seen] == ["start.exactonline.nl"]


@pytest.mark.e2e
def test_g12_over_loopback_the_other_server_receives_nothing(tmp_path: Path) -> None:
    """A real second server as the redirect target: it never sees a request or a bearer token."""
    evil = Recorder(Sandbox())
    with serve(evil) as evil_url, loopback_world(tmp_path / "v") as world:
        world.sb.faults.add(
            "redirect", location=f"{evil_url}/api/v1/{DIVISION}/{ACCOUNTS}", path_contains="crm/"
        )
        with pytest.raises(RedirectNotAllowed):
            get_accounts(world.client())
        assert len(world.app.api_calls()) == 1
    assert evil.seen == []


# -- G13 --------------------------------------------------------------------------------------------


def _self_signed(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate for ``names`` (IP addresses or DNS names) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def _https(app: Recorder, cert: Path, key: Path) -> Iterator[str]:
    """The app on https://127.0.0.1:PORT with the given certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SandboxServer(("127.0.0.1", 0), app)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "names", [["127.0.0.1"], ["other.example"]], ids=["self-signed", "wrong-host"]
)
@pytest.mark.parametrize("due", [False, True], ids=["api-call", "token-call"])
def test_g13_an_untrusted_certificate_is_refused_even_with_ssl_cert_file_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str], due: bool
) -> None:
    """TLS verification cannot be switched off: not by a flag, not by SSL_CERT_FILE; no retries."""
    from client_harness import add_credential, advance, issue_tokens, make_world, store_tokens

    cert, key = _self_signed(tmp_path, names)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # would make httpx trust it with trust_env
    world = make_world(tmp_path / "v")
    recorder = Recorder(world.sb)
    with _https(recorder, cert, key) as base_url:
        tokens = issue_tokens(world.sb)
        tls = add_credential(world.vault, world.sb, base_url, tokens["refresh_token"], "tls")
        store_tokens(world.vault, tls.id, tokens, world.clock.now())
        if due:
            advance(world.clock, 590)
        client = ExactClient(world.vault, tls.id, clock=world.clock, allow_sandbox=True)
        try:
            with pytest.raises(ConfigError) as caught:
                get_accounts(client)
        finally:
            client.close()
        assert recorder.seen == [], "nothing reached the server"
        if names == ["127.0.0.1"]:  # the server itself works for a client that trusts it
            trusting = ssl.create_default_context(cafile=str(cert))
            with httpx.Client(verify=trusting) as other:
                assert other.get(f"{base_url}/api/v1/current/Me").status_code == 401
    assert "TLS certificate" in caught.value.message
    assert type(caught.value) is ConfigError and not caught.value.retryable
    world.close()


def test_g13_no_parameter_can_turn_verification_off() -> None:
    """The client's constructor has no verify, cert or proxy knob."""
    parameters = set(inspect.signature(ExactClient).parameters)
    assert not parameters & {"verify", "cert", "trust_env", "proxy", "proxies", "mounts"}


# -- G14 --------------------------------------------------------------------------------------------


@contextmanager
def _black_hole() -> Iterator[tuple[str, list[int]]]:
    """A listening socket that counts connections and closes them: a proxy that must stay idle."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.mark.e2e
def test_g14_proxy_variables_in_the_environment_are_ignored(
    wire: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_env=False, decided: HTTP(S)_PROXY/ALL_PROXY never see the bearer token."""
    with _black_hole() as (proxy, accepted):
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert get_accounts(wire.client()).status_code == 200
        assert accepted == []
        with httpx.Client() as default, pytest.raises(httpx.HTTPError):  # the control
            default.get(f"{wire.server_url}/api/v1/current/Me")
        assert accepted, "the environment did point httpx's defaults at the proxy"


# -- G15 --------------------------------------------------------------------------------------------


def test_g15_a_trickling_body_is_cut_off_at_the_step_deadline(world: World) -> None:
    """16 bytes a second never trips a per-read timeout; the step's 30 s deadline does."""
    world.sb.faults.add("trickle", chunk=16, interval=1.0, path_contains="crm/Accounts")
    started = world.clock.now()
    with pytest.raises(RequestTimeout):
        get_accounts(world.client(), deadline=started + 30)
    assert 30 <= world.clock.now() - started <= 32
    assert len(world.app.api_calls()) == 1, "the deadline is spent: no retry"


def test_g15_a_trickling_body_within_the_deadline_arrives_whole(world: World) -> None:
    """The chunked read reassembles exactly what a plain read gets."""
    client = world.client()
    plain = get_accounts(client).json()
    world.sb.faults.add("trickle", chunk=100, interval=0.01, path_contains="crm/Accounts")
    assert get_accounts(client, deadline=world.clock.now() + 1000).json() == plain


def test_g15_a_trickling_post_answer_is_outcome_unknown(world: World) -> None:
    """A POST's answer still arriving at the deadline: OUTCOME_UNKNOWN; the record exists once."""
    world.sb.faults.add("trickle", chunk=4, interval=1.0, method="POST")
    with pytest.raises(OutcomeUnknown):
        create_account(world.client(), "G15 Slow", deadline=world.clock.now() + 20)
    assert world.sb.counters.records_created[ACCOUNTS] == 1


@pytest.mark.e2e
def test_g15_over_loopback_the_deadline_beats_the_per_read_timeout(tmp_path: Path) -> None:
    """Real sockets, real time: a read timeout of 0.5 s, a byte run every 50 ms, a 1 s step."""
    with loopback_world(tmp_path / "v", clock=SystemClock()) as world:
        world.sb.faults.add("trickle", chunk=32, interval=0.05, path_contains="crm/Accounts")
        client = world.client(timeout=httpx.Timeout(0.5))
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            get_accounts(client, deadline=world.clock.now() + 1.0)
        assert time.monotonic() - started < 2.0


@pytest.mark.e2e
def test_g15_the_configured_per_operation_timeout_is_honoured(tmp_path: Path) -> None:
    """timeout=0.2 s against a server that stalls: several attempts fit in a 1.5 s step."""
    release = threading.Event()
    with loopback_world(tmp_path / "v", clock=SystemClock()) as world:
        _hang_api(world, release)
        client = world.client(timeout=httpx.Timeout(0.2))
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            get_accounts(client, deadline=world.clock.now() + 1.5)
        elapsed = time.monotonic() - started
        release.set()
        attempts = len(world.app.api_calls())
    assert attempts >= 2
    assert elapsed < 2.5


@pytest.mark.parametrize("encoded", [True, False], ids=["gzip", "plain"])
def test_a_compressed_body_is_read_decoded_with_headers_that_describe_it(
    world: World, encoded: bool
) -> None:
    """Exact compresses its answers: the response the client returns holds the decoded body, and
    no header still describes the wire's (a stale Content-Encoding would decode it twice)."""

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response:
        answer = call()
        body = answer.read()
        headers = {k: v for k, v in answer.headers.items() if k not in ("content-length",)}
        if encoded:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        return httpx.Response(answer.status_code, headers=headers, content=body)

    world.app.tamper = tamper
    response = get_accounts(world.client())
    assert response.json()["d"]["results"]
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["x-ratelimit-minutely-limit"] == "60"
