"""The CLI over the Connector: ``credentials add``, ``test-connect`` and ``run``, against a sandbox
served on 127.0.0.1.

``credentials add`` runs as a real subprocess (argv, secrets on stdin, the sign-in URL on stderr)
while a thread plays the browser. The other commands run in-process through ``cli.main`` on a
credential signed in through the Connector API. Every output is scanned for the secrets the
sandbox handed out.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from exact_connector import redaction
from exact_connector.cli import main
from exact_connector.cli._callback import browser_get
from exact_connector.cli.connect import _pasted_query, complete_sign_in
from exact_connector.exceptions import InputError
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, SandboxApp, serve
from exact_connector.vault import Vault
from exact_connector.vault.sealing import generate_key

pytestmark = pytest.mark.e2e

DIVISION = 100001
TIME_TRANSACTIONS = "project/TimeTransactions"


# -- the world: a sandbox on loopback, a vault, a signed-in credential ----------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> str | None:
    """A browser's GET; the Location it was sent to, if any."""
    return browser_get(url)[1]


class Registering:
    """The sandbox, registering with the scanner every code and token it hands out."""

    def __init__(self, sandbox: Sandbox, scanner: ModuleType) -> None:
        self.sandbox = sandbox
        self.scanner = scanner

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self.sandbox(request)
        if request.url.path == "/api/oauth2/token" and response.status_code == 200:
            for name in ("access_token", "refresh_token"):
                self.scanner.register_secret(response.json()[name])
        location = parse_qs(urlsplit(response.headers.get("location", "")).query)
        for code in location.get("code", []):
            self.scanner.register_secret(code)
        return response


@dataclass
class CliWorld:
    """What a CLI command needs: the sandbox's base URL, a vault home, the env with its key."""

    sb: Sandbox
    app: SandboxApp
    base_url: str
    home: Path
    env: dict[str, str]
    scanner: ModuleType
    #: The secrets other tests registered before this world: they are matched as whole words
    #: only (the scan of a megabyte output for each of thousands, anywhere, took a minute).
    earlier: frozenset[str] = frozenset()

    def cli(self, *argv: str, stdin: str = "", home: bool = True) -> tuple[int, str, str]:
        """Run ``exact-connector ARGV --home HOME`` in-process; output scanned for secrets."""
        out, err = io.StringIO(), io.StringIO()
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _stdin(stdin),
        ):
            code = main([*argv, "--home", str(self.home)] if home else list(argv))
        recent = set(redaction.known_secrets()) - self.earlier
        self.scanner.assert_no_secrets(out.getvalue() + err.getvalue(), "CLI output", recent)
        return code, out.getvalue(), err.getvalue()

    def run(self, action: str, inputs: dict[str, Any], *flags: str) -> tuple[int, str, str]:
        """``exact-connector run ACTION --credential cli --input - FLAGS`` with ``inputs`` on stdin."""
        argv = ("run", action, "--credential", "cli", "--input", "-", *flags)
        return self.cli(*argv, stdin=json.dumps(inputs))

    def run_file(
        self, action: str, inputs: dict[str, Any], *flags: str, credential: str = "cli"
    ) -> tuple[int, str, str]:
        """``exact-connector run ACTION --credential CREDENTIAL --input FILE FLAGS``, ``inputs`` in FILE."""
        path = self.home.parent / "input.json"
        path.write_text(json.dumps(inputs), "utf-8")
        return self.cli("run", action, "--credential", credential, "--input", str(path), *flags)

    def credentials_add(self, name: str) -> tuple[str, ...]:
        """The start of ``credentials add`` for ``name`` on the sandbox with the test app."""
        server, client = ("--server-url", self.base_url), ("--client-id", self.app.client_id)
        return ("credentials", "add", "--name", name, *server, *client)

    def vault(self) -> Vault:
        return Vault.open(self.home)

    def api_requests(self) -> int:
        return self.sb.counters.calls() - self.sb.counters.calls("oauth2/token")


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


@pytest.fixture
def world(
    tmp_path: Path, scanner: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliWorld]:
    """A sandbox on loopback (real clock, limits on) and an empty vault whose key is in the env."""
    earlier = frozenset(redaction.known_secrets())
    key = base64.b64encode(generate_key()).decode()
    scanner.register_secret(key)
    env = {"EXACT_CONNECTOR_VAULT_KEY": key, "EXACT_CONNECTOR_ALLOW_SANDBOX": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EXACT_CONNECTOR_HOME", raising=False)
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    app = SandboxApp(
        "5e0f5d2c-9a41-4b8e-8f3a-2c7d9e1b4a60", "cli-" + generate_key().hex()[:24], (redirect,)
    )
    scanner.register_secret(app.client_secret)
    sb = Sandbox(auto_consent=True, apps=[app])
    with serve(Registering(sb, scanner)) as base_url:
        yield CliWorld(sb, app, base_url, tmp_path / "vault", env, scanner, earlier)


@pytest.fixture
def signed_in(world: CliWorld) -> CliWorld:
    """``world`` with an active credential named ``cli``, signed in through the Connector API."""
    vault = world.vault()
    try:
        connector = Connector(vault=vault, allow_sandbox=True)
        credential = connector.credentials.begin(
            {
                "connector_name": "cli",
                "auth_type": "oauth2_authorization_code",
                "server_url": world.base_url,
                "client_id": world.app.client_id,
                "client_secret": world.app.client_secret,
                "redirect_uri": world.app.redirect_uris[0],
            }
        )
        location = _get(connector.authorization_url(credential, "cli-state-0001"))
        query = parse_qs(urlsplit(location or "").query)
        connector.complete_authorization(credential, query["code"][0], query["state"][0])
        assert connector.test_connect(credential)["ok"]
        connector.credentials.activate(credential)
    finally:
        vault.close()
    world.sb.reset_counters()
    return world


# -- credentials add ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_credentials_add_signs_in_through_the_loopback_redirect(world: CliWorld) -> None:
    """A subprocess: secrets on stdin, the URL on stderr, a browser thread, then Test Connect."""
    argv = [
        sys.executable,
        "-m",
        "exact_connector",
        *world.credentials_add("cli"),
        "--home",
        str(world.home),
        "--redirect-uri",
        world.app.redirect_uris[0],
        "--secrets-stdin",
        "--no-browser",
        "--json",
        "--timeout",
        "30",
    ]
    world.scanner.assert_no_secrets(" ".join(argv), "argv")
    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **world.env},
    ) as process:
        assert process.stdin and process.stdout and process.stderr
        process.stdin.write(json.dumps({"client_secret": world.app.client_secret}))
        process.stdin.close()
        seen: list[str] = []
        for line in process.stderr:
            seen.append(line)
            if line.strip().startswith("http://"):
                break
        url = seen[-1].strip()
        browser = threading.Thread(target=lambda: _get(_get(url) or ""), daemon=True)
        browser.start()
        rest, out = process.stderr.read(), process.stdout.read()  # bounded by the CLI's --timeout
        process.wait(timeout=10)
        browser.join(timeout=10)

    err = "".join(seen) + rest
    world.scanner.assert_no_secrets(out + err, "credentials add output")
    assert process.returncode == 0, err
    assert json.loads(out)["ok"] is True
    assert "Credential cli is active." in err
    assert "sign-in cli: waiting for the sign-in until " in err  # not silent while it waits
    assert url.startswith(f"{world.base_url}/api/oauth2/auth?client_id={world.app.client_id}")
    vault = world.vault()
    try:
        stored = vault.get("cli")
    finally:
        vault.close()
    assert stored.status == "active" and stored.allowed_divisions == (100001, 100002, 100003)
    assert world.sb.counters.token_grants["authorization_code"] == 1


_BROWSER = """#!{python}
import json, os, sys
from exact_connector.cli._callback import browser_get
with open({seen!r}, "w") as out:
    json.dump(dict(os.environ), out)
location = browser_get(sys.argv[1])[1]
browser_get(location or "")
"""


@pytest.mark.slow
def test_the_browser_child_of_credentials_add_gets_no_vault_key(
    world: CliWorld, tmp_path: Path
) -> None:
    """RELIABILITY J9: the browser ``credentials add`` starts signs in, without the vault key."""
    seen = tmp_path / "browser-env.json"
    browser = tmp_path / "browser"
    browser.write_text(_BROWSER.format(python=sys.executable, seen=str(seen)), "utf-8")
    browser.chmod(0o700)
    argv = [sys.executable, "-m", "exact_connector", "credentials", "add", "--home"]
    argv += [str(world.home), "--name", "cli", "--server-url", world.base_url, "--client-id"]
    argv += [world.app.client_id, "--redirect-uri", world.app.redirect_uris[0]]
    argv += ["--secrets-stdin", "--timeout", "30"]

    done = subprocess.run(
        argv,
        input=json.dumps({"client_secret": world.app.client_secret}),
        capture_output=True,
        text=True,
        env={**os.environ, **world.env, "BROWSER": str(browser)},
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    child_env = json.loads(seen.read_text("utf-8"))
    assert "EXACT_CONNECTOR_VAULT_KEY" not in child_env
    assert child_env["BROWSER"] == str(browser)  # it really was this process's child
    world.scanner.assert_no_secrets(seen.read_text("utf-8"), "the browser's environment")


def test_a_secret_cannot_be_given_as_an_argument(world: CliWorld) -> None:
    """There is no --client-secret option: argparse refuses it (exit 2), nothing is stored."""
    with pytest.raises(SystemExit) as exited:
        world.cli(
            *world.credentials_add("argv"),
            "--client-secret",
            world.app.client_secret,
        )

    assert exited.value.code == 2
    assert not world.home.exists()


def test_credentials_add_without_a_terminal_or_secrets_stdin_is_refused(world: CliWorld) -> None:
    """Secrets come from a terminal or --secrets-stdin; piped input without the flag is refused."""
    code, out, err = world.cli(
        *world.credentials_add("piped"),
        "--redirect-uri",
        world.app.redirect_uris[0],
        stdin=json.dumps({"client_secret": world.app.client_secret}),
    )

    assert code == 3 and out == ""
    assert err.startswith("error[invalid_input]: Secrets are read from a terminal")


# -- test-connect ---------------------------------------------------------------------------------------


def test_test_connect_prints_the_report_as_json(signed_in: CliWorld) -> None:
    """test-connect NAME --json: exit 0 and every check passed."""
    code, out, _ = signed_in.cli("test-connect", "cli", "--json")

    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert [check["name"] for check in report["checks"]] == [
        "token",
        "user",
        "divisions",
        "rate_limit",
        "refresh_token_age",
    ]
    assert report["checks"][2]["detail"]["allowed"] == [100001, 100002, 100003]


def test_test_connect_of_a_credential_needing_reauth_fails_with_exit_4(
    signed_in: CliWorld,
) -> None:
    """A failed check is reported, not raised; the exit code is the config category's."""
    vault = signed_in.vault()
    try:
        vault.set_status(vault.get("cli").id, "needs_reauth", reason="test")
    finally:
        vault.close()

    code, out, _ = signed_in.cli("test-connect", "cli")

    assert code == 4
    assert out.splitlines()[0].startswith("FAIL token")
    assert out.rstrip().endswith("Test Connect failed.")


# -- run ------------------------------------------------------------------------------------------------


def test_run_prints_the_data_and_exits_0(signed_in: CliWorld) -> None:
    """run ACTION --input FILE: the action's data on stdout."""
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID"], "limit": 2}

    code, out, _ = signed_in.run_file("list_or_get_endpoint", inputs)

    data = json.loads(out)
    assert code == 0 and data["count"] == 2 and set(data) == {"records", "count", "next_cursor"}


def test_run_ndjson_streams_every_record_of_a_list(signed_in: CliWorld) -> None:
    """--ndjson prints each record as one JSON line, across pages, without holding the list."""
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID", "Modified"]}

    code, out, _ = signed_in.run("list_or_get_endpoint", inputs, "--ndjson")

    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert len(lines) == signed_in.sb.count(DIVISION, "crm/Accounts")
    assert len({line["ID"] for line in lines}) == len(lines)
    assert all(set(line) == {"ID", "Modified"} for line in lines)
    assert all(not line["Modified"].startswith("/Date(") for line in lines if line["Modified"])


def test_run_ndjson_refuses_anything_but_a_list(signed_in: CliWorld) -> None:
    """A single record or another action is a user error (exit 3), with nothing sent."""
    record = signed_in.sb.records(DIVISION, TIME_TRANSACTIONS)[0]
    inputs = {"division": DIVISION, "endpoint": TIME_TRANSACTIONS, "id": record["ID"]}

    code, out, err = signed_in.run("list_or_get_endpoint", inputs, "--ndjson")

    assert code == 3 and out == "" and "--ndjson streams lists" in err
    assert signed_in.api_requests() == 0


def test_run_json_reads_stdin_and_prints_the_envelope(signed_in: CliWorld) -> None:
    """--input - reads the JSON from stdin; --json prints the whole envelope."""
    record = signed_in.sb.records(DIVISION, TIME_TRANSACTIONS)[0]
    inputs = {"division": DIVISION, "id": record["ID"], "data": {"Notes": "from the CLI"}}

    code, out, _ = signed_in.run("update_project_time_transaction", inputs, "--json")

    envelope = json.loads(out)
    assert code == 0 and envelope["ok"] is True
    assert envelope["data"]["record"]["Notes"] == "from the CLI"
    assert envelope["meta"]["api_calls"] == 2


def _fail_create(world: CliWorld) -> dict[str, Any]:
    world.sb.faults.add("drop", method="POST", path_contains=TIME_TRANSACTIONS)
    project = world.sb.records(DIVISION, "project/Projects")[0]["ID"]
    item = next(r for r in world.sb.records(DIVISION, "logistics/Items") if r["IsTime"])["ID"]
    return {"division": DIVISION, "data": {"Project": project, "Item": item, "Quantity": 1}}


def _spend_the_day(world: CliWorld) -> dict[str, Any]:
    world.sb.rate_limits.daily = 1  # another client of the app spends the (now tiny) day
    tokens = world.sb.issue_tokens()
    for value in tokens.values():
        world.scanner.register_secret(value)
    with httpx.Client(
        transport=httpx.MockTransport(world.sb),
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ) as other:
        answer = other.get(f"https://start.exactonline.nl/api/v1/{DIVISION}/system/Divisions")
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    return {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 1}


@pytest.mark.parametrize(
    ("setup", "action", "credential", "category", "exit_code", "error_code"),
    [
        pytest.param(
            lambda w: {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 0},
            "list_or_get_endpoint",
            "cli",
            "user",
            3,
            "invalid_input",
            id="user",
        ),
        pytest.param(
            lambda w: {"division": DIVISION, "endpoint": "crm/Accounts"},
            "list_or_get_endpoint",
            "nobody",
            "config",
            4,
            "credential_not_found",
            id="config",
        ),
        pytest.param(
            _spend_the_day,
            "list_or_get_endpoint",
            "cli",
            "transient",
            5,
            "rate_limited_daily",
            id="transient",
        ),
        pytest.param(
            _fail_create,
            "create_project_time_transaction",
            "cli",
            "system",
            6,
            "outcome_unknown",
            id="system",
        ),
    ],
)
def test_run_exits_with_the_error_categorys_code(
    signed_in: CliWorld,
    setup: Any,
    action: str,
    credential: str,
    category: str,
    exit_code: int,
    error_code: str,
) -> None:
    """A failed step: nothing on stdout, one error line and a hint on stderr, exit 3/4/5/6."""
    inputs = setup(signed_in)

    code, out, err = signed_in.run_file(action, inputs, credential=credential)

    assert (code, out) == (exit_code, "")
    assert err.startswith(f"error[{error_code}]: ")
    assert "\nhint: " in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("inputs", "credential", "error_code", "exit_code"),
    [
        ({"division": DIVISION, "endpoint": "crm/Accounts", "limit": 0}, "cli", "invalid_input", 3),
        ({"division": DIVISION, "endpoint": "crm/Accounts"}, "nobody", "credential_not_found", 4),
    ],
    ids=["user", "config"],
)
def test_run_json_prints_the_envelope_of_a_failure_too(
    signed_in: CliWorld, inputs: dict[str, Any], credential: str, error_code: str, exit_code: int
) -> None:
    """With --json the envelope is on stdout whether the step worked or not; the line on stderr."""
    code, out, err = signed_in.run_file(
        "list_or_get_endpoint", inputs, "--json", credential=credential
    )

    envelope = json.loads(out)
    assert code == exit_code
    assert envelope["ok"] is False
    assert envelope["action"] == "list_or_get_endpoint"
    assert envelope["error"]["code"] == error_code
    assert err.startswith(f"error[{error_code}]: ")


def test_run_input_file_that_does_not_exist_says_so(signed_in: CliWorld, tmp_path: Path) -> None:
    """A missing --input file is named as missing, not as unreadable JSON."""
    missing = str(tmp_path / "nonexistent.json")
    code, out, err = signed_in.cli(
        "run", "list_or_get_endpoint", "--credential", "cli", "--input", missing
    )

    assert (code, out) == (3, "")
    assert err.splitlines()[0] == (
        "error[invalid_input]: The input file cannot be read: no such file or directory."
    )
    assert "Traceback" not in err


def test_run_with_unreadable_input_is_a_user_error(signed_in: CliWorld) -> None:
    """Input that is not a JSON object: one line and a hint on stderr, exit 3, no traceback."""
    code, out, err = signed_in.cli(
        "run", "list_or_get_endpoint", "--credential", "cli", "--input", "-", stdin="[1, 2"
    )

    assert (code, out) == (3, "")
    assert err.splitlines()[0] == "error[invalid_input]: The input is not readable JSON."
    assert "Traceback" not in err


@pytest.mark.parametrize("via_stdin", [True, False], ids=["stdin", "file"])
def test_run_with_an_input_past_the_limit_says_so(
    signed_in: CliWorld, tmp_path: Path, via_stdin: bool
) -> None:
    """Valid JSON over 10 MB was cut at the limit and then called "not readable JSON"."""
    text = json.dumps({"division": 1, "endpoint": "crm/Accounts", "filter": "x" * (11 << 20)})
    source = "-"
    if not via_stdin:
        source = str(tmp_path / "big.json")
        Path(source).write_text(text)
    before = sum(signed_in.sb.counters.requests.values())
    code, out, err = signed_in.cli(
        "run", "list_or_get_endpoint", "--credential", "cli", "--input", source,
        stdin=text if via_stdin else "",
    )  # fmt: skip
    assert (code, out) == (3, "")
    assert err.splitlines()[0] == "error[invalid_input]: The input is larger than 10 MB."
    assert sum(signed_in.sb.counters.requests.values()) == before  # nothing sent


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(("--credential", "cli\udcff"), id="credential"),
        pytest.param(("--credential", "cli", "--json", "\udc80"), id="stray"),
    ],
)
def test_an_argument_that_is_not_utf8_is_an_input_error_naming_it(
    signed_in: CliWorld, argv: tuple[str, ...]
) -> None:
    """Bytes that are not UTF-8 in argv (Python keeps them as lone surrogates): exit 3, no trace."""
    code, out, err = signed_in.cli("run", "list_or_get_endpoint", "--input", "-", *argv)

    assert (code, out) == (3, "")
    assert "argv[" in err and "[encoding]" in err
    assert "Traceback" not in err and signed_in.api_requests() == 0


def test_run_with_a_select_300_lists_deep_is_a_user_error_naming_the_path(
    signed_in: CliWorld,
) -> None:
    """Deep nesting is bounded before validation: exit 3 with the path, no RecursionError."""
    select: Any = "Code"
    for _ in range(300):
        select = [select]
    inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "select": select}

    code, out, _ = signed_in.run_file("list_or_get_endpoint", inputs, "--json")

    assert code == 3
    assert json.loads(out)["error"]["details"]["errors"][0]["path"].startswith("$.select[0]")
    assert signed_in.api_requests() == 0


# -- run --dry-run --------------------------------------------------------------------------------------


def test_dry_run_prints_the_request_with_the_token_masked_and_sends_nothing(
    signed_in: CliWorld,
) -> None:
    """--dry-run: method, URL, headers (Bearer ********) and body; the sandbox saw no request."""
    record = signed_in.sb.records(DIVISION, TIME_TRANSACTIONS)[0]
    inputs = {"division": DIVISION, "id": record["ID"], "data": {"Quantity": 3.5}}
    before = dict(signed_in.sb.counters.requests)

    code, out, _ = signed_in.run_file("update_project_time_transaction", inputs, "--dry-run")

    plan = json.loads(out)
    assert code == 0
    assert plan["method"] == "PUT" and plan["sent"] is False
    assert plan["url"] == (
        f"{signed_in.base_url}/api/v1/{DIVISION}/{TIME_TRANSACTIONS}(guid'{record['ID']}')"
    )
    assert plan["headers"]["Authorization"] == "Bearer ********"
    assert plan["json"] == {"Quantity": 3.5}
    assert dict(signed_in.sb.counters.requests) == before
    assert signed_in.sb.counters.token_calls == 0
    assert signed_in.sb.record(DIVISION, TIME_TRANSACTIONS, record["ID"]) == record


def test_dry_run_of_invalid_input_reports_it_without_sending(signed_in: CliWorld) -> None:
    """The dry run validates like the real run: the field errors, exit 3, nothing sent."""
    code, out, err = signed_in.run_file(
        "delete_endpoint_record", {"division": DIVISION, "endpoint": "crm/Accounts"}, "--dry-run"
    )

    assert (code, out) == (3, "")
    assert "$.id: is required [required]" in err
    assert signed_in.api_requests() == 0


def test_a_redirect_uri_we_cannot_listen_on_takes_the_pasted_address(
    world: CliWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An https redirect URI (as Exact requires for real apps): the person pastes where they landed."""
    app = SandboxApp(
        "0c4b5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f",
        "paste-" + generate_key().hex()[:20],
        ("https://apps.example.test/exact/callback",),
    )
    world.scanner.register_secret(app.client_secret)
    sandbox = Sandbox(auto_consent=True, apps=[app])
    with serve(sandbox) as base_url:
        connector = Connector(vault=world.vault(), allow_sandbox=True)
        credential = connector.credentials.begin(
            {
                "connector_name": "pasted",
                "auth_type": "oauth2_authorization_code",
                "server_url": base_url,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uri": app.redirect_uris[0],
            }
        )
        shown: list[str] = []
        monkeypatch.setattr("builtins.input", lambda _prompt: " " + str(_get(shown[0])) + "\n")
        signed_in = complete_sign_in(connector, credential, announce=shown.append)
        assert signed_in.refresh_token is not None
        assert connector.test_connect(signed_in)["ok"] is True


@pytest.mark.parametrize(
    "pasted", ["", "not an address", "https://apps.example.test/cb?state=x", "ht!tp://["]
)
def test_an_unreadable_pasted_address_is_a_clear_input_error(
    signed_in: CliWorld, pasted: str
) -> None:
    """No traceback: the person is told what to paste."""
    with pytest.raises(InputError) as caught:
        _pasted_query(pasted)
    assert "Copy the whole address" in caught.value.hint
