"""The sandbox over real loopback sockets: the code flow, paging, writes, faults, shutdown."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sandbox_harness import ACCEPT_JSON, DIVISION, new_hours

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox, serve

pytestmark = pytest.mark.e2e
TT = f"/api/v1/{DIVISION}/project/TimeTransactions"


@pytest.fixture
def served(sb: Sandbox) -> Iterator[str]:
    """The sandbox on 127.0.0.1, its base URL."""
    with serve(sb) as base_url:
        yield base_url


def _signed_in(base_url: str, sandbox: Sandbox) -> httpx.Client:
    token = sandbox.issue_tokens()["access_token"]
    headers = {"Authorization": f"Bearer {token}", **ACCEPT_JSON}
    return httpx.Client(base_url=base_url, headers=headers, timeout=5)


def test_code_flow_over_loopback(sb: Sandbox, served: str) -> None:
    """Consent page, allow, redirect with code, token exchange, then an API call."""
    app = sb.demo_app
    with httpx.Client(base_url=served, headers=ACCEPT_JSON, timeout=5) as browser:
        page = browser.get(sb.authorize_url(state="e2e", base_url=served).removeprefix(served))
        assert page.status_code == 200 and "Allow" in page.text
        form = {
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uris[0],
            "response_type": "code",
            "state": "e2e",
            "division": [str(code) for code in sb.divisions],
            "decision": "allow",
        }
        back = browser.post("/api/oauth2/auth", data=form)
        assert back.status_code == 302
        query = parse_qs(urlsplit(back.headers["location"]).query)
        assert query["state"] == ["e2e"]
        grant = browser.post(
            "/api/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": app.redirect_uris[0],
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        ).json()
        me = browser.get(
            "/api/v1/current/Me", headers={"Authorization": f"Bearer {grant['access_token']}"}
        )
    assert me.status_code == 200
    assert me.json()["d"]["results"][0]["__metadata"]["uri"].startswith(
        f"{served}/api/v1/current/Me("
    )


def test_paging_follows_next_links_on_the_loopback_host(sb: Sandbox, served: str) -> None:
    """__next links name 127.0.0.1:PORT, and following them yields all 150 rows."""
    with _signed_in(served, sb) as api:
        body = api.get(TT, params={"$select": "ID"}).json()["d"]
        rows = list(body["results"])
        while "__next" in body:
            assert body["__next"].startswith(f"{served}{TT}?")
            body = api.get(body["__next"]).json()["d"]
            rows.extend(body["results"])
    assert len({row["ID"] for row in rows}) == 150


def test_create_update_delete_over_loopback(sb: Sandbox, served: str) -> None:
    """POST 201, PUT 204, DELETE 204 travel intact over HTTP/1.1."""
    with _signed_in(served, sb) as api:
        body = new_hours(api, Quantity=3)
        created = api.post(TT, json=body, headers={"Prefer": "return=representation"})
        assert created.status_code == 201
        key = created.json()["d"]["ID"]
        updated = api.put(f"{TT}(guid'{key}')", json={"Quantity": 4})
        assert (updated.status_code, updated.content) == (204, b"")
        assert api.get(f"{TT}(guid'{key}')").json()["d"]["Quantity"] == 4
        assert api.delete(f"{TT}(guid'{key}')").status_code == 204
    assert sb.record(DIVISION, "project/TimeTransactions", key) is None


def test_reason_phrase_and_headers_reach_the_wire(sb: Sandbox, served: str) -> None:
    """Exact's reason phrase for query errors and the rate-limit headers arrive as sent."""
    with _signed_in(served, sb) as api:
        broken = api.get(TT, params={"$filter": "Quantity eq"})
        fine = api.get(TT, params={"$top": "1"})
    assert broken.reason_phrase == "Bad Request - Error in query syntax."
    assert fine.headers["x-ratelimit-minutely-remaining"] == "58"


def test_a_dropped_answer_closes_the_socket_after_the_record_was_made(
    sb: Sandbox, served: str
) -> None:
    """drop: the client sees the connection close with no answer; the POST took effect."""
    with _signed_in(served, sb) as api:
        body = new_hours(api, Quantity=1)
        sb.faults.add("drop", method="POST")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            api.post(TT, json=body)
        assert api.get("/api/v1/current/Me").status_code == 200
    assert sb.count(DIVISION, "project/TimeTransactions") == 151


def test_latency_is_real_time_with_the_system_clock() -> None:
    """With the real clock, a latency fault makes a short read timeout fire."""
    sandbox = Sandbox()
    sandbox.faults.add("latency", seconds=0.5)
    with (
        serve(sandbox) as base_url,
        httpx.Client(base_url=base_url, timeout=0.1) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get("/api/v1/current/Me")


def test_keep_alive_serves_many_requests_on_one_connection(sb: Sandbox, served: str) -> None:
    """One client, one connection, many requests; Connection: close is honoured."""
    with _signed_in(served, sb) as api:
        for _ in range(20):
            assert api.get("/api/v1/current/Me").status_code == 200
        closing = api.get("/api/v1/current/Me", headers={"Connection": "close"})
    assert closing.headers["connection"] == "close"


def test_a_broken_app_answers_500_and_the_server_lives_on() -> None:
    """An exception inside the app becomes a 500, not a dead connection thread."""
    calls = []

    def broken(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/boom":
            raise RuntimeError("bug")
        return httpx.Response(200, content=b"ok")

    with serve(broken) as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        assert client.get("/boom").status_code == 500
        assert client.get("/fine").text == "ok"
    assert calls == ["/boom", "/fine"]


def test_shutdown_closes_the_port_and_ends_every_thread(clock: ManualClock) -> None:
    """After the with block nothing listens and no connection thread is left."""
    sandbox = Sandbox(clock=clock)
    before = set(threading.enumerate())
    with serve(sandbox) as base_url:
        client = _signed_in(base_url, sandbox)
        assert client.get("/api/v1/current/Me").status_code == 200  # keep-alive left open
        port = int(base_url.rsplit(":", 1)[1])
    client.close()
    assert set(threading.enumerate()) <= before
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_a_trickling_body_arrives_whole_over_loopback() -> None:
    """Each piece comes within the read timeout, so only an overall deadline could stop it."""
    sandbox = Sandbox()
    with serve(sandbox) as base_url, _signed_in(base_url, sandbox) as api:
        api.timeout = httpx.Timeout(1.0)
        whole = api.get(TT, params={"$top": "2", "$select": "ID"}).content
        sandbox.faults.add("trickle", chunk=len(whole) // 3 + 1, interval=0.2)
        started = time.monotonic()
        slow = api.get(TT, params={"$top": "2", "$select": "ID"})
        waited = time.monotonic() - started
    assert slow.content == whole
    assert waited >= 0.35  # two pauses of 0.2 s: the body really came in pieces
