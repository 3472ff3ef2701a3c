"""Commands that failed with a traceback or off the output contract now fail as every command does:
one ``error[code]`` line, the field at fault and a hint on stderr, the exit code of its category,
nothing stored damaged.

Against a sandbox served on 127.0.0.1 (``credentials``, ``trigger``) or a port held by the test
(``ui``); each command runs in-process through ``cli.main``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_cli_connect import DIVISION, CliWorld, _free_port
from test_cli_connect import signed_in as signed_in  # the fixtures, re-exported for pytest
from test_cli_connect import world as world

from exact_connector.cli import main
from exact_connector.runtime import Connector

pytestmark = pytest.mark.e2e

REAUTHORIZE = "exact-connector credentials reauthorize {}"


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 that something else is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder


def _port(holder: socket.socket) -> int:
    return int(holder.getsockname()[1])


def _status(world: CliWorld, name: str) -> str:
    with world.vault() as vault:
        return vault.get(name).status


# -- credentials add / reauthorize: a sign-in that cannot start ----------------------------------


def _add(world: CliWorld, name: str, server_url: str) -> tuple[int, str, str]:
    secret = json.dumps({"client_secret": world.app.client_secret})
    argv = ("credentials", "add", "--name", name, "--server-url", server_url)
    argv += ("--client-id", world.app.client_id, "--redirect-uri", world.app.redirect_uris[0])
    return world.cli(*argv, "--secrets-stdin", "--no-browser", "--timeout", "30", stdin=secret)


def test_add_with_no_sandbox_answering_says_so_and_how_to_continue(world: CliWorld) -> None:
    """Nothing at the server URL: exit 4 naming the URL, how to finish the stored credential."""
    silent = f"http://127.0.0.1:{_free_port()}"
    code, out, err = _add(world, "silent", silent)
    assert code == 4, err
    assert err.startswith("Stored credential silent (")
    assert f"error[config_error]: The sandbox at {silent} does not answer (" in err
    assert "  $.server_url: does not answer [unreachable]" in err
    assert "exact-connector sandbox" in err and REAUTHORIZE.format("silent") in err
    assert "Traceback" not in err and out == ""
    assert _status(world, "silent") == "pending"


def test_reauthorize_with_no_sandbox_answering_is_the_same_error(world: CliWorld) -> None:
    """A pending credential whose sandbox is down: exit 4, the credential kept as it was."""
    silent = f"http://127.0.0.1:{_free_port()}"
    with world.vault() as vault:
        Connector(vault=vault, allow_sandbox=True).credentials.begin(
            {
                "connector_name": "silent",
                "auth_type": "oauth2_authorization_code",
                "server_url": silent,
                "client_id": world.app.client_id,
                "client_secret": world.app.client_secret,
                "redirect_uri": world.app.redirect_uris[0],
            }
        )
    code, out, err = world.cli("credentials", "reauthorize", "silent", "--no-browser")
    assert code == 4, err
    assert err.startswith(f"error[config_error]: The sandbox at {silent} does not answer (")
    assert REAUTHORIZE.format("silent") in err and "Traceback" not in err and out == ""
    assert _status(world, "silent") == "pending"


def test_add_with_the_redirect_port_taken_names_the_port(world: CliWorld) -> None:
    """The sandbox answers but the redirect URI's port is held: exit 4 naming the port."""
    port = urlsplit(world.app.redirect_uris[0]).port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port or 0))
        holder.listen()
        code, out, err = _add(world, "crowded", world.base_url)
    assert code == 4, err
    assert f"error[config_error]: The sign-in cannot listen on 127.0.0.1:{port}, " in err
    assert "  $.redirect_uri: cannot be listened on [listen]" in err
    assert REAUTHORIZE.format("crowded") in err and "Traceback" not in err and out == ""
    assert _status(world, "crowded") == "pending"
    assert world.sb.counters.token_grants["authorization_code"] == 0


# -- trigger budget / run: interval_seconds is checked before it is used -------------------------

BAD_INTERVALS = [0, -10, "abc", None, 1.5, True, 86_401]
INTERVAL_ERROR = "$.interval_seconds: must be a whole number of seconds from 1 to 86400"


@pytest.mark.parametrize("interval", BAD_INTERVALS)
def test_budget_refuses_an_interval_its_schema_refuses(world: CliWorld, interval: Any) -> None:
    """Zero, negative, text, null, a fraction, a boolean or over a day: exit 3 at the field."""
    code, out, err = world.cli(
        "trigger", "budget", "record_changed", "--input", "-",
        stdin=json.dumps({"interval_seconds": interval}), home=False,
    )  # fmt: skip
    assert code == 3, err
    assert err.startswith(f"error[invalid_input]: Invalid value at {INTERVAL_ERROR}.\n")
    # The hint points at the field lines just printed, not at an envelope the CLI does not show.
    assert "hint: Correct the fields listed above and run the step again.\n" in err
    assert "details.errors" not in err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("interval", BAD_INTERVALS)
def test_run_refuses_a_bad_interval_before_polling(signed_in: CliWorld, interval: Any) -> None:
    """`trigger run` checks the interval it sleeps by first: exit 3, no API call made."""
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "interval_seconds": interval}
    code, out, err = signed_in.cli(
        "trigger", "run", "record_changed", "--credential", "cli", "--input", "-",
        "--polls", "1", stdin=json.dumps(inputs),
    )  # fmt: skip
    assert code == 3, err
    assert err.startswith(f"error[invalid_input]: Invalid value at {INTERVAL_ERROR}.\n")
    assert "Traceback" not in err and out == ""
    assert signed_in.api_requests() == 0


# -- ui --port: out of range is a usage error, a held port a configuration error -----------------


@pytest.fixture
def ui_ready(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """The UI's page counts as built; what would be served is recorded instead of served."""
    served: list[Any] = []
    monkeypatch.setattr("exact_connector.ui.assets.bundle_dir", lambda: tmp_path / "page")
    monkeypatch.setattr(
        "exact_connector.ui.server.serve_forever", lambda app, sock: served.append(app)
    )
    return served


def test_ui_on_a_held_port_says_which_and_what_to_do(
    ui_ready: list[Any],
    held_port: socket.socket,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A port something else listens on: exit 4 naming it and --port 0; nothing served."""
    port = _port(held_port)
    assert main(["ui", "--home", str(tmp_path / "none"), "--port", str(port)]) == 4
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"error[config_error]: The UI cannot listen on 127.0.0.1:{port} ("
    )
    assert "hint: Choose another port with --port, or --port 0" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert ui_ready == [] and not (tmp_path / "none").exists()


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_ui_port_out_of_range_is_a_usage_error(
    ui_ready: list[Any], port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--port outside 0..65535 (or not a number) is refused by the parser: exit 2, nothing bound."""
    with pytest.raises(SystemExit) as stopped:
        main(["ui", "--sandbox", "--port", port])
    assert stopped.value.code == 2
    assert "argument --port: --port must be " in capsys.readouterr().err
    assert ui_ready == []


# -- trigger poll / run / subscribe: a failure is an error line on stderr, not JSON on stdout -----

ELSEWHERE = 999  # a division the credential was not granted
FAILING = {
    "poll": (["poll", "record_changed"], {"endpoint": "crm/Accounts"}),
    "run": (["run", "record_changed", "--polls", "1"], {"endpoint": "crm/Accounts"}),
    "subscribe": (
        ["subscribe"],
        {"topic": "Accounts", "callback_url": "https://engine.example.com/hooks/exact"},
    ),
    "unsubscribe": (
        ["unsubscribe"],
        {"topic": "Accounts", "callback_url": "https://engine.example.com/hooks/exact"},
    ),
}


@pytest.mark.parametrize("name", FAILING)
def test_a_failed_trigger_command_prints_the_error_on_stderr(
    signed_in: CliWorld, name: str
) -> None:
    """A division the credential may not use: exit 3, `error[…]`, hint and fix on stderr, and
    stdout left empty (it carries events, one JSON object a line, and nothing else)."""
    argv, inputs = FAILING[name]
    code, out, err = signed_in.cli(
        "trigger", *argv, "--credential", "cli", "--input", "-",
        stdin=json.dumps({"division": ELSEWHERE, **inputs}),
    )  # fmt: skip
    assert code == 3, err
    assert err.startswith("error[division_not_allowed]: ")
    home = signed_in.home  # the fix acts on the vault the command used
    assert (
        "\nhint: " in err
        and f"\nrun: exact-connector --home {home} credentials reauthorize cli\n" in err
    )
    assert out == ""


def test_the_fixing_command_names_the_credential_quoted_for_a_shell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``run:`` lines and hints said ``NAME``: a line that cannot be pasted as it is. They name
    the command's credential now, quoted for the shell (a name may hold spaces)."""
    from exact_connector.cli._output import fail_with, run_for, run_in

    run_in(["--home", "/tmp/a home"])
    run_for("Acme B.V.")
    try:
        fail_with(
            {
                "code": "credential_pending",
                "category": "config",
                "message": "Its sign-in never finished.",
                "hint": "Finish it: exact-connector credentials reauthorize NAME.",
            }
        )
    finally:
        run_in(())
        run_for(None)
    err = capsys.readouterr().err
    assert "hint: Finish it: exact-connector credentials reauthorize 'Acme B.V.'.\n" in err
    assert "run: exact-connector --home '/tmp/a home' credentials reauthorize 'Acme B.V.'\n" in err
