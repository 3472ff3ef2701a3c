"""``exact-connector demo``: the whole product against the embedded sandbox, in seconds.

It starts the sandbox on 127.0.0.1, creates a throw-away vault and key, adds a credential through
the real authorization-code flow (the sandbox consents automatically; the demo plays the browser),
runs Test Connect, then creates, lists, gets, updates and deletes a time transaction. Nothing
leaves the machine and nothing is left behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exact_connector.cli import command
from exact_connector.cli._callback import browser_get
from exact_connector.cli.connect import complete_sign_in
from exact_connector.clock import SystemClock
from exact_connector.exceptions import EXIT_CODES, Category
from exact_connector.results import ActionResult
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, SandboxApp, serve
from exact_connector.vault import Vault
from exact_connector.vault.sealing import KeyRing, generate_key

__all__ = ["SandboxWorkspace", "register", "run_demo", "sandbox_workspace"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    demo = command(subparsers, "demo", _demo)
    demo.add_argument("--json", action="store_true", help="print the steps as JSON")
    demo.add_argument("--seed", type=int, default=1, help="sandbox data seed (default 1)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Story:
    """Collects the steps; prints each as it happens unless JSON was asked for."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.steps: list[dict[str, Any]] = []

    def tell(self, title: str, text: str, **detail: Any) -> None:
        self.steps.append({"step": title, "ok": True, "summary": text, "detail": detail})
        if not self.as_json:
            number = len(self.steps)
            lines = text.splitlines() or [""]
            sys.stdout.write(f"{number:>2}. {title:<13} {lines[0]}\n")
            for line in lines[1:]:
                sys.stdout.write(f"    {'':<13} {line}\n")
            sys.stdout.flush()


class _StepFailed(Exception):
    def __init__(self, title: str, error: dict[str, Any]) -> None:
        super().__init__(title)
        self.title = title
        self.error = error


def _ok(title: str, result: ActionResult) -> dict[str, Any]:
    if not result["ok"]:
        raise _StepFailed(title, dict(result["error"]))
    return result["data"]


@dataclass
class SandboxWorkspace:
    """The embedded sandbox on loopback, its one registered app, and a connector on a temporary
    vault that allows it."""

    base_url: str
    sandbox: Sandbox
    connector: Connector

    @property
    def app(self) -> SandboxApp:
        """The sandbox's one registered app, redirecting to the workspace's redirect URI."""
        return self.sandbox.demo_app

    def credential_form(self, name: str) -> dict[str, Any]:
        """The credential form filled in for the sandbox's app (what a person would type)."""
        return {
            "connector_name": name,
            "auth_type": "oauth2_authorization_code",
            "server_url": self.base_url,
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
            "redirect_uri": self.app.redirect_uris[0],
        }


@contextmanager
def sandbox_workspace(
    redirect_uri: str,
    *,
    seed: int = 1,
    auto_consent: bool = True,
    app_name: str = "exact-connector demo",
) -> Iterator[SandboxWorkspace]:
    """Serve a sandbox whose app redirects to ``redirect_uri``, with a throw-away vault and key.

    The vault directory is removed when the block ends; nothing is left behind.
    """
    app = SandboxApp(
        "8d6b3f4e-1f0a-4c1e-9d57-5a8f0b2c7e10",
        "demo-" + generate_key().hex()[:32],
        (redirect_uri,),
        app_name,
    )
    sandbox = Sandbox(seed=seed, auto_consent=auto_consent, apps=[app])
    home = Path(tempfile.mkdtemp(prefix="exact-connector-demo-"))
    try:
        with serve(sandbox) as base_url:
            vault = Vault.open(home / "vault", keys=KeyRing.from_bytes(generate_key()))
            try:
                connector = Connector(vault=vault, allow_sandbox=True, clock=SystemClock())
                yield SandboxWorkspace(base_url, sandbox, connector)
            finally:
                vault.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_demo(story: _Story, seed: int = 1) -> int:
    """Run every step; returns the API calls made after sign-in."""
    redirect_uri = f"http://127.0.0.1:{_free_port()}/callback"
    with sandbox_workspace(redirect_uri, seed=seed) as workspace:
        story.tell(
            "Sandbox",
            f"Exact Online simulator on {workspace.base_url} (seed {seed}, limits on)",
            base_url=workspace.base_url,
        )
        connector = workspace.connector
        story.tell(
            "Vault",
            "temporary encrypted vault with a fresh AES-256 key",
            home=str(connector.vault.home),
        )
        credential = connector.credentials.begin(workspace.credential_form("Demo company"))
        credential = complete_sign_in(connector, credential, open_url=_browse, timeout=30)
        story.tell(
            "Sign-in",
            "authorization code received on the loopback redirect URI,\n"
            "exchanged for tokens, stored encrypted",
            credential_id=credential.id,
        )
        report = connector.test_connect(credential)
        lines = [
            ("ok  " if c["ok"] else "FAIL") + f" {c['name']}: {c['summary']}"
            for c in report["checks"]
        ]
        if not report["ok"]:
            raise _StepFailed("Test Connect", {"message": "; ".join(lines)})
        credential = connector.credentials.activate(credential)
        story.tell("Test Connect", "\n".join(lines), report=report)
        return _actions(connector, credential.id, story)


def _browse(url: str) -> None:
    """A stand-in for a person's browser: open the URL, follow the consent redirect.

    Plain ``http.client``, which logs nothing: the redirect and the callback URL carry the one-time
    code, and httpx would log both (the URL at INFO, the Location header at DEBUG).
    """
    _, location = browser_get(url)
    if location is None:
        raise _StepFailed("Sign-in", {"message": "the sandbox did not redirect after consent"})
    browser_get(location)


def _actions(connector: Connector, credential: str, story: _Story) -> int:
    division = connector.credentials.get(credential).default_division
    project = connector.options("projects", credential)[0]
    hour_type = connector.options("hour_types", credential)[0]
    employee = connector.options("employees", credential)[0]
    calls = 3  # the three option lookups above, one API call each
    today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00")
    entry = {"division": division, "endpoint": "project/TimeTransactions"}

    def run(action: str, inputs: dict[str, Any]) -> ActionResult:
        nonlocal calls
        result = connector.execute(action, credential, inputs)
        calls += int(result["meta"]["api_calls"])
        return result

    data = {
        "Project": project["value"],
        "Item": hour_type["value"],
        "Employee": employee["value"],
        "Quantity": 2.5,
        "Date": today,
        "Notes": "Written by exact-connector demo",
    }
    created = run("create_project_time_transaction", {"division": division, "data": data})
    record = _ok("Create", created)["record"]
    story.tell(
        "Create",
        f"time transaction {record['ID']}\n{record['Quantity']} h on "
        f"{project['label']} ({hour_type['label']}) for {employee['label']}",
        record=record,
    )

    select = ["ID", "Date", "Quantity", "ProjectCode"]
    listed_result = run("list_or_get_endpoint", {**entry, "limit": 5, "select": select})
    listed = _ok("List", listed_result)
    story.tell(
        "List",
        f"{listed['count']} time transactions ({listed_result['meta']['api_calls']} API call); "
        "next_cursor "
        f"{'returned' if listed['next_cursor'] else 'empty'}",
        records=listed["records"],
    )

    got = _ok("Get", run("list_or_get_endpoint", {**entry, "id": record["ID"]}))
    story.tell(
        "Get",
        f"{record['ID']} read back: {got['record']['Quantity']} h, "
        f'notes "{got["record"]["Notes"]}"',
        record=got["record"],
    )

    change = {"Quantity": 4.0, "Notes": "Updated by exact-connector demo"}
    update = {"division": division, "id": record["ID"], "data": change}
    updated = _ok("Update", run("update_project_time_transaction", update))
    story.tell(
        "Update",
        f"Quantity {record['Quantity']} -> {updated['record']['Quantity']} h; re-read confirms",
        record=updated["record"],
    )

    _ok("Delete", run("delete_endpoint_record", {**entry, "id": record["ID"]}))
    gone = run("list_or_get_endpoint", {**entry, "id": record["ID"]})
    code = gone["error"]["code"] if not gone["ok"] else "still there"
    if code != "not_found":
        raise _StepFailed("Delete", {"message": f"the record was not deleted ({code})"})
    story.tell("Delete", f"{record['ID']} deleted; reading it again answers {code}")
    return calls


def _demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    story = _Story(args.json)
    try:
        calls = run_demo(story, args.seed)
    except _StepFailed as failed:
        story.steps.append({"step": failed.title, "ok": False, "error": failed.error})
        if args.json:
            sys.stdout.write(json.dumps({"ok": False, "steps": story.steps}, indent=2) + "\n")
        sys.stderr.write(
            f"error: the demo failed at {failed.title}: {failed.error.get('message', '')}\n"
        )
        return EXIT_CODES[Category.SYSTEM]
    seconds = time.monotonic() - started
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "ok": True,
                    "seconds": round(seconds, 2),
                    "api_calls": calls,
                    "steps": story.steps,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
    else:
        sys.stdout.write(
            f"Done in {seconds:.1f} s: {calls} API calls to the sandbox after "
            "sign-in; the temporary vault was removed.\n"
        )
    return 0
