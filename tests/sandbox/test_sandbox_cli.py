"""``exact-connector sandbox``: prints how to connect, serves on loopback, stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sandbox_harness import ACCEPT_JSON

pytestmark = pytest.mark.e2e
FIELDS = ("base_url", "client_id", "client_secret", "redirect_uri")


@contextmanager
def _running(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    command = [sys.executable, "-m", "exact_connector", "sandbox", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed: dict[str, str] = {}
        while not set(FIELDS) <= set(printed):
            line = process.stdout.readline() if process.stdout else ""
            assert line, (
                f"the sandbox ended early: {process.stderr.read() if process.stderr else ''}"
            )
            name, _, value = line.rstrip("\n").partition(": ")
            printed[name] = value
        yield process, printed
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_it_prints_the_connection_details_one_per_line() -> None:
    """base_url, client_id, client_secret and redirect_uri as ``name: value`` lines."""
    with _running("--seed", "3") as (process, printed):
        assert printed["base_url"].startswith("http://127.0.0.1:")
        assert printed["redirect_uri"] == "http://127.0.0.1:8976/callback"
        assert len(printed["client_secret"]) == 12
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_it_serves_until_stopped_and_exits_0(stop: signal.Signals) -> None:
    """The printed app signs in with auto-consent; a signal ends the process with status 0."""
    with _running("--auto-consent", "--limits", "off", "--rows", "7") as (process, printed):
        with httpx.Client(base_url=printed["base_url"], headers=ACCEPT_JSON, timeout=5) as http:
            params = {
                "client_id": printed["client_id"],
                "redirect_uri": printed["redirect_uri"],
                "response_type": "code",
                "state": "cli",
            }
            code = parse_qs(
                urlsplit(http.get("/api/oauth2/auth", params=params).headers["location"]).query
            )["code"][0]
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": printed["redirect_uri"],
                "client_id": printed["client_id"],
                "client_secret": printed["client_secret"],
            }
            token = http.post("/api/oauth2/token", data=form).json()["access_token"]
            listed = http.get(
                "/api/v1/100001/crm/Accounts", headers={"Authorization": f"Bearer {token}"}
            )
        assert len(listed.json()["d"]["results"]) == 7
        assert not [h for h in listed.headers if h.startswith("x-ratelimit")]
        process.send_signal(stop)
        assert process.wait(timeout=10) == 0
        assert "sandbox stopped" in (process.stderr.read() if process.stderr else "")


def test_a_busy_port_is_a_config_error_without_traceback() -> None:
    """Exit 4 (config) with one line and a hint when the port is taken."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "exact_connector", "sandbox", "--port", port],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 4
    assert done.stderr.startswith("error[config_error]: The sandbox cannot listen on 127.0.0.1:")
    assert "hint: Choose another port" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args", [["--port", "70000"], ["--limits", "maybe"], ["--rows", "-1"], ["--seed", "x"]], ids=str
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    """argparse refuses out-of-range or malformed options with exit code 2."""
    done = subprocess.run(
        [sys.executable, "-m", "exact_connector", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "usage:" in done.stderr
