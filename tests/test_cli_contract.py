"""The CLI's output contract, in real processes against a sandbox on 127.0.0.1.

Data on stdout only; a failure is one ``error[code]`` line and a hint on stderr with an exit code
by category; ``--json`` gives the envelope either way; a closed pipe ends any command quietly
(exit 141, no traceback); ``--home`` may come before the command.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest

from exact_connector.cli._callback import browser_get
from exact_connector.clock import ManualClock
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.vault import Vault
from exact_connector.vault.sealing import generate_key

pytestmark = pytest.mark.e2e

DIVISION = 100001
ROOT_CONFTEST = Path(__file__).resolve().parent / "conftest.py"


@dataclass
class Cli:
    """A signed-in credential ``cli`` in a vault at ``home``, on a sandbox served at ``base_url``."""

    sb: Sandbox
    base_url: str
    home: Path
    env: dict[str, str]
    scanner: ModuleType

    def run(
        self, *argv: str, stdin: str = "", stdout: int | None = subprocess.PIPE
    ) -> subprocess.CompletedProcess[str]:
        """``python -m exact_connector ARGV`` with the vault key in the environment."""
        done = subprocess.run(
            [sys.executable, "-m", "exact_connector", *argv],
            input=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.env},
            timeout=60,
            check=False,
        )
        self.scanner.assert_no_secrets((done.stdout or "") + done.stderr, "CLI output")
        return done

    def file(self, name: str, data: object) -> str:
        path = self.home.parent / name
        path.write_text(json.dumps(data), "utf-8")
        return str(path)


@pytest.fixture
def scanner(pytestconfig: pytest.Config) -> ModuleType:
    """The lead's conftest module as pytest loaded it: its secret set is the one scanned."""
    for plugin in pytestconfig.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", "") or "").resolve() == ROOT_CONFTEST:
            return plugin  # type: ignore[no-any-return]
    raise RuntimeError("tests/conftest.py is not loaded; the secret scanner would be silent")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Sandbox, str]]:
    """One sandbox for the module (limits off: these tests are about output, not pacing)."""
    sb = Sandbox(auto_consent=True, limits=False)
    with serve(sb) as base_url:
        yield sb, base_url


@pytest.fixture
def cli(
    served: tuple[Sandbox, str],
    tmp_path: Path,
    scanner: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    """A fresh vault with an active credential ``cli``, signed in through the Connector API."""
    sb, base_url = served
    scanner.register_secret(sb.demo_app.client_secret)
    key = scanner.register_secret(base64.b64encode(generate_key()).decode())
    env = {"EXACT_CONNECTOR_VAULT_KEY": key, "EXACT_CONNECTOR_ALLOW_SANDBOX": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "vault"
    with Vault.open(home) as vault:
        connector = Connector(vault=vault, allow_sandbox=True)
        credential = connector.credentials.begin(
            {
                "connector_name": "cli",
                "auth_type": "oauth2_authorization_code",
                "server_url": base_url,
                "client_id": sb.demo_app.client_id,
                "client_secret": sb.demo_app.client_secret,
                "redirect_uri": sb.demo_app.redirect_uris[0],
            }
        )
        location = browser_get(connector.authorization_url(credential, "contract-state"))[1]
        query = parse_qs(urlsplit(location or "").query)
        scanner.register_secret(query["code"][0])
        connector.complete_authorization(credential, query["code"][0], query["state"][0])
        connector.credentials.activate(credential)
    return Cli(sb, base_url, home, env, scanner)


def _list(cli: Cli) -> str:
    return cli.file("list.json", {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 3})


#: Every command that prints to stdout, as argv after ``--home HOME`` (``{list}``: an input file).
COMMANDS = {
    "manifest": ["manifest"],
    "manifest-json": ["manifest", "--json"],
    "form": ["form", "credentials"],
    "form-json": ["form", "list_or_get_endpoint", "--json"],
    "form-rjsf": ["form", "credentials", "--rjsf"],
    "form-live": ["form", "list_or_get_endpoint", "--json", "--credential", "cli"],
    "validate": ["validate", "list_or_get_endpoint", "{list}"],
    "endpoints": ["endpoints"],
    "endpoints-json": ["endpoints", "--json"],
    "vault-verify": ["vault", "verify"],
    "vault-keys": ["vault", "keys"],
    "credentials-list": ["credentials", "list"],
    "credentials-show": ["credentials", "show", "cli"],
    "test-connect": ["test-connect", "cli"],
    "run": ["run", "list_or_get_endpoint", "--credential", "cli", "--input", "{list}"],
    "run-json": ["run", "list_or_get_endpoint", "--credential", "cli", "--input", "{list}", "--json"],
    "run-ndjson": [
        "run", "list_or_get_endpoint", "--credential", "cli", "--input", "{list}", "--ndjson"
    ],
    "run-dry": ["run", "list_or_get_endpoint", "--credential", "cli", "--input", "{list}", "--dry-run"],
    "endpoints-show": ["endpoints", "show", "crm/Accounts"],
    "options": ["options", "endpoints", "--param", "method=DELETE"],
    "options-live": ["options", "projects", "--credential", "cli", "--division", "100001"],
    "limits-reset": ["limits", "reset", "--credential", "cli"],
    "sandbox": ["sandbox", "--port", "0"],
    "demo": ["demo"],
}  # fmt: skip


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_closed_pipe_ends_every_command_quietly(cli: Cli, name: str) -> None:
    """Output into a pipe whose reader is gone (``| head`` done): exit 141, no traceback."""
    argv = [part.replace("{list}", _list(cli)) for part in COMMANDS[name]]
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = cli.run("--home", str(cli.home), *argv, stdout=writer)
    finally:
        os.close(writer)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr


def test_credentials_add_with_a_closed_pipe_ends_quietly(cli: Cli) -> None:
    """``credentials add`` (a pasted refresh token) prints its Test Connect report: same rule."""
    tokens = cli.sb.issue_tokens()
    for value in tokens.values():
        cli.scanner.register_secret(value)
    secrets = {
        "client_secret": cli.sb.demo_app.client_secret,
        "refresh_token": tokens["refresh_token"],
    }
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = cli.run(
            "credentials", "add", "--home", str(cli.home), "--name", "pasted",
            "--auth-type", "oauth2_refresh_token", "--server-url", cli.base_url,
            "--client-id", cli.sb.demo_app.client_id, "--secrets-stdin",
            stdin=json.dumps(secrets), stdout=writer,
        )  # fmt: skip
    finally:
        os.close(writer)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr


def test_home_may_come_before_the_command(cli: Cli) -> None:
    """``exact-connector --home DIR credentials list`` reads that vault."""
    done = cli.run("--home", str(cli.home), "credentials", "list", "--json")
    assert done.returncode == 0, done.stderr
    assert [c["connector_name"] for c in json.loads(done.stdout)] == ["cli"]


def test_run_failure_is_one_line_and_a_hint_on_stderr(cli: Cli) -> None:
    """A user error from ``run``: nothing on stdout, ``error[…]`` and ``hint:`` on stderr, exit 3."""
    bad = cli.file("bad.json", {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 0})
    done = cli.run("run", "list_or_get_endpoint", "--home", str(cli.home), "--credential", "cli",
                   "--input", bad)  # fmt: skip
    assert (done.returncode, done.stdout) == (3, "")
    lines = done.stderr.splitlines()
    assert lines[0] == "error[invalid_input]: The action input is not valid."
    assert any(line.startswith("hint: ") for line in lines)
    assert "Traceback" not in done.stderr


def test_run_json_gives_the_envelope_on_failure(cli: Cli) -> None:
    """``--json``: the failure's envelope on stdout, its line on stderr, the same exit code."""
    done = cli.run("run", "list_or_get_endpoint", "--home", str(cli.home), "--credential", "nobody",
                   "--input", _list(cli), "--json")  # fmt: skip
    envelope = json.loads(done.stdout)
    assert done.returncode == 4
    assert (envelope["ok"], envelope["error"]["code"]) == (False, "credential_not_found")
    assert done.stderr.startswith("error[credential_not_found]: ")
    assert f"run: exact-connector --home {cli.home} credentials list" in done.stderr


def test_an_unreachable_host_has_one_exit_code_everywhere(cli: Cli) -> None:
    """The same transport failure exits 5 (transient) from ``test-connect`` and from ``run``."""
    sb = cli.sb
    sb.faults.add("drop", path_contains="/api/v1/", times=None)
    try:
        tested = cli.run("test-connect", "cli", "--home", str(cli.home))
        ran = cli.run("run", "list_or_get_endpoint", "--home", str(cli.home), "--credential", "cli",
                      "--input", _list(cli))  # fmt: skip
    finally:
        sb.faults.clear()
    assert (tested.returncode, ran.returncode) == (5, 5), (tested.stderr, ran.stderr)
    assert tested.stderr.startswith("error[")
    assert "Traceback" not in tested.stderr + ran.stderr


def test_json_and_ndjson_together_are_refused(cli: Cli) -> None:
    """``--ndjson`` would be ignored beside ``--json``: argparse refuses the pair (exit 2)."""
    done = cli.run("run", "list_or_get_endpoint", "--home", str(cli.home), "--credential", "cli",
                   "--input", _list(cli), "--json", "--ndjson")  # fmt: skip
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr
    assert "Traceback" not in done.stderr


def test_reauthorize_takes_no_secrets_stdin(cli: Cli) -> None:
    """``reauthorize`` reads no secrets: ``--secrets-stdin`` is refused, not ignored."""
    done = cli.run("credentials", "reauthorize", "cli", "--home", str(cli.home), "--secrets-stdin")
    assert done.returncode == 2
    assert "unrecognized arguments: --secrets-stdin" in done.stderr


def test_add_without_a_redirect_uri_is_refused_before_anything_is_stored(cli: Cli) -> None:
    """The code flow needs ``--redirect-uri``: said at once, exit 3, nothing stored."""
    done = cli.run("credentials", "add", "--home", str(cli.home), "--name", "other",
                   "--server-url", cli.base_url, "--client-id", cli.sb.demo_app.client_id,
                   "--secrets-stdin", stdin="{}")  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.startswith(
        "error[invalid_input]: The browser sign-in needs the redirect URI"
    )
    assert "  $.redirect_uri: is required [required]" in done.stderr
    with Vault.open(cli.home) as vault:
        assert [c.connector_name for c in vault.list()] == ["cli"]


def test_secrets_stdin_with_a_pasted_redirect_is_refused_up_front(cli: Cli) -> None:
    """Standard input holds the secrets, so it cannot also take the pasted address: no EOFError."""
    done = cli.run("credentials", "add", "--home", str(cli.home), "--name", "other",
                   "--server-url", cli.base_url, "--client-id", cli.sb.demo_app.client_id,
                   "--redirect-uri", "https://example.org/callback", "--secrets-stdin",
                   stdin="{}")  # fmt: skip
    assert done.returncode == 3
    assert "error[invalid_input]: With --secrets-stdin" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_names_every_credentials_command(cli: Cli) -> None:
    """Top-level help lists ``add`` among the credentials commands."""
    done = cli.run("--help")
    assert "add, reauthorize, list, show and remove credentials" in " ".join(done.stdout.split())


def test_options_lists_a_live_dropdown_for_a_credential(cli: Cli) -> None:
    """``options projects --credential`` prints what ``Connector.options`` gives an engine."""
    done = cli.run("options", "projects", "--home", str(cli.home), "--credential", "cli",
                   "--division", str(DIVISION), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    projects = {r["ID"] for r in cli.sb.records(DIVISION, "project/Projects")}
    values = [o["value"] for o in json.loads(done.stdout)]
    assert values and set(values) <= projects


def test_options_divisions_are_known_right_after_sign_in(cli: Cli) -> None:
    """The credential never ran Test Connect, yet its divisions are listed."""
    done = cli.run("options", "divisions", "--home", str(cli.home), "--credential", "cli", "--json")
    assert done.returncode == 0, done.stderr
    assert [o["value"] for o in json.loads(done.stdout)] == list(cli.sb.divisions)


def test_options_without_a_needed_placeholder_is_a_user_error(cli: Cli) -> None:
    """``records?…&division={division}`` with no division: exit 3 naming $.division."""
    done = cli.run("options", "records?endpoint=crm/Accounts&division={division}",
                   "--home", str(cli.home), "--credential", "cli")  # fmt: skip
    assert done.returncode == 3
    assert "  $.division: placeholder unfilled [required]" in done.stderr


def test_endpoints_show_lists_fields_with_types(cli: Cli) -> None:
    """``endpoints show`` tells which fields an endpoint has, their types and flags."""
    done = cli.run("endpoints", "show", "project/TimeTransactions", "--json")
    shown = json.loads(done.stdout)
    assert (shown["id"], shown["title"], shown["key"]) == (
        "project/TimeTransactions",
        "Time Transactions",
        "ID",
    )
    quantity = next(f for f in shown["fields"] if f["name"] == "Quantity")
    assert (quantity["type"], quantity["mandatory"]) == ("Edm.Double", True)
    unknown = cli.run("endpoints", "show", "crm/Nothing")
    assert unknown.returncode == 3 and unknown.stderr.startswith("error[unknown_endpoint]")


def test_endpoints_search_matches_words_of_titles(cli: Cli) -> None:
    """``--search "time transactions"`` finds project/TimeTransactions (words, not a substring)."""
    done = cli.run("endpoints", "--search", "time transactions", "--json")
    assert "project/TimeTransactions" in [e["id"] for e in json.loads(done.stdout)]


def test_limits_reset_lifts_the_local_hold_and_the_sandboxs(cli: Cli) -> None:
    """Eight malformed filters hold the endpoint; ``limits reset`` lets valid queries run again."""
    bad = cli.file(
        "bad.json", {"division": DIVISION, "endpoint": "crm/Accounts", "filter": "Name eq"}
    )
    good = _list(cli)
    cli.sb.limits_enabled = True
    try:
        with Vault.open(cli.home) as vault:
            connector = Connector(vault=vault, allow_sandbox=True)
            for _ in range(8):
                connector.execute("list_or_get_endpoint", "cli", json.loads(Path(bad).read_text()))
            connector.governor.close()
        held = cli.run("run", "list_or_get_endpoint", "--home", str(cli.home), "--credential", "cli",
                       "--input", good)  # fmt: skip
        reset = cli.run("limits", "reset", "--home", str(cli.home), "--credential", "cli")
        again = cli.run("run", "list_or_get_endpoint", "--home", str(cli.home), "--credential", "cli",
                        "--input", good)  # fmt: skip
    finally:
        cli.sb.limits_enabled = False
    assert held.returncode == 5
    assert held.stderr.startswith("error[error_budget_protect]: ")
    assert "held until 20" in held.stderr
    assert f"run: exact-connector --home {cli.home} limits reset --credential cli" in held.stderr
    assert reset.returncode == 0, reset.stderr
    assert "local: 8 counted error(s) forgotten" in reset.stdout
    assert "sandbox: blocks lifted" in reset.stdout
    assert again.returncode == 0, again.stderr


def test_a_redirect_uri_the_sandbox_does_not_know_fails_at_once(cli: Cli) -> None:
    """No 300 s wait: the sandbox's refusal is reported before the sign-in wait starts; the
    credential left pending is then pointed at ``reauthorize`` when added again."""
    add = ("credentials", "add", "--home", str(cli.home), "--name", "wrong", "--server-url",
           cli.base_url, "--client-id", cli.sb.demo_app.client_id, "--redirect-uri",
           "http://127.0.0.1:9/elsewhere", "--secrets-stdin", "--no-browser")  # fmt: skip
    secret = json.dumps({"client_secret": cli.sb.demo_app.client_secret})
    started = time.monotonic()
    done = cli.run(*add, "--timeout", "300", stdin=secret)
    assert time.monotonic() - started < 60
    assert done.returncode == 4, done.stderr
    assert "error[config_error]: The sandbox does not know this app" in done.stderr
    field = "  $.redirect_uri: not registered for this client_id in the sandbox [not_registered]\n"
    assert field in done.stderr
    assert "exact-connector sandbox` prints" in done.stderr
    again = cli.run(*add, stdin=secret)
    assert again.returncode == 4
    assert again.stderr.startswith("error[credential_pending]: ")
    assert f"run: exact-connector --home {cli.home} credentials reauthorize wrong" in again.stderr


def test_a_sandbox_url_without_the_switch_names_the_variable(cli: Cli) -> None:
    """Pointing at the sandbox without EXACT_CONNECTOR_ALLOW_SANDBOX says which variable to set."""
    cli.env["EXACT_CONNECTOR_ALLOW_SANDBOX"] = "0"
    done = cli.run("credentials", "add", "--home", str(cli.home), "--name", "off",
                   "--server-url", cli.base_url, "--client-id", cli.sb.demo_app.client_id,
                   "--redirect-uri", cli.sb.demo_app.redirect_uris[0], "--secrets-stdin",
                   stdin=json.dumps({"client_secret": "x"}))  # fmt: skip
    assert done.returncode in (3, 4), done.stderr
    assert "EXACT_CONNECTOR_ALLOW_SANDBOX=1" in done.stderr


def test_limits_reset_of_one_endpoint_leaves_the_sandboxs_other_counts(cli: Cli) -> None:
    """``limits reset --endpoint E`` forgets E's errors only, in the local count and in the
    sandbox alike (it used to lift the sandbox's counts on every endpoint; a typo lifted all)."""
    bad = {"division": DIVISION, "endpoint": "crm/Accounts", "filter": "Name eq"}
    cli.sb.limits_enabled = True
    try:
        with Vault.open(cli.home) as vault:
            connector = Connector(vault=vault, allow_sandbox=True)
            for _ in range(3):
                connector.execute("list_or_get_endpoint", "cli", dict(bad))
            connector.governor.close()
        client = cli.sb.demo_app.client_id
        counted = {s: n for s in list(cli.sb.error_budget._errors)
                   if s[0] == client and (n := cli.sb.error_budget.errors(s))}  # fmt: skip
        assert counted, "the sandbox counted no errors"
        reset = cli.run("limits", "reset", "--home", str(cli.home), "--credential", "cli",
                        "--endpoint", "crm/Contacts")  # fmt: skip
        after = {s: cli.sb.error_budget.errors(s) for s in counted}
        own = cli.run("limits", "reset", "--home", str(cli.home), "--credential", "cli",
                      "--endpoint", "crm/accounts")  # fmt: skip
        cleared = {s: cli.sb.error_budget.errors(s) for s in counted}
    finally:
        cli.sb.limits_enabled = False
    assert reset.returncode == 0, reset.stderr
    assert "local: 0 counted error(s) forgotten" in reset.stdout
    assert after == counted, (reset.stdout, counted, after)
    assert own.returncode == 0, own.stderr
    assert "sandbox: blocks lifted on 1 endpoint(s)" in own.stdout
    assert set(cleared.values()) == {0}, cleared


def test_a_pasted_refresh_token_too_new_to_use_says_when_and_how_to_finish(
    tmp_path: Path, scanner: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact refuses a refresh within 570 s of the grant. Test Connect of such a pasted token
    said to run again "after retry_at" without the time, and the `reauthorize` it pointed at
    refused every pasted token, so the credential stayed pending for good. Now the time is
    printed, with the command that finishes it, and that command does once the time has come."""
    clock = ManualClock(time.time())
    sb = Sandbox(auto_consent=True, limits=False, clock=clock)
    with serve(sb) as base_url:
        key = scanner.register_secret(base64.b64encode(generate_key()).decode())
        scanner.register_secret(sb.demo_app.client_secret)
        env = {"EXACT_CONNECTOR_VAULT_KEY": key, "EXACT_CONNECTOR_ALLOW_SANDBOX": "1"}
        monkeypatch.setenv("EXACT_CONNECTOR_VAULT_KEY", key)
        home = tmp_path / "vault"
        Vault.open(home).close()
        cli = Cli(sb, base_url, home, env, scanner)
        tokens = sb.issue_tokens()
        for value in tokens.values():
            scanner.register_secret(value)
        secrets = {
            "client_secret": sb.demo_app.client_secret,
            "refresh_token": tokens["refresh_token"],
        }
        add = cli.run(
            "credentials", "add", "--home", str(home), "--name", "pasted",
            "--auth-type", "oauth2_refresh_token", "--server-url", base_url,
            "--client-id", sb.demo_app.client_id, "--secrets-stdin",
            stdin=json.dumps(secrets),
        )  # fmt: skip
        assert add.returncode == 5, add.stderr
        assert "sooner than 570 s after the previous one" in add.stderr
        assert "\nretry at: 20" in add.stderr
        finish = "finish it with `exact-connector credentials reauthorize pasted`"
        assert finish in add.stderr
        clock.advance(600)
        done = cli.run("credentials", "reauthorize", "--home", str(home), "pasted")
    assert done.returncode == 0, done.stderr
    assert "Credential pasted is active." in done.stderr
