"""``credentials add|reauthorize``, ``test-connect`` and ``run``: the CLI over :class:`Connector`.

Secrets are never taken from argv (visible in ``/proc/*/cmdline``): they are read with getpass on a
terminal, or as a JSON object on standard input with ``--secrets-stdin``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from exact_connector.cli import command
from exact_connector.cli._output import fail_with, print_json
from exact_connector.cli._progress import progress_on_stderr
from exact_connector.cli.vault import credentials_subparsers, open_vault, vault_options
from exact_connector.exceptions import Category, ConfigError, InputError, ReauthRequired
from exact_connector.oauth import new_state
from exact_connector.progress import Progress, SignInWait, emit
from exact_connector.runtime import Connector
from exact_connector.urls import parse_server_url
from exact_connector.vault import DATABASE_URL_ENV, Credential
from exact_connector.vault.sealing import KEY_ENV

__all__ = ["complete_sign_in", "open_browser", "read_input", "register"]

_SECRET_FIELDS = ("client_secret", "refresh_token")
_MAX_INPUT = 10 * 1024 * 1024
#: Environment variables no child process may inherit.
KEY_MATERIAL = (KEY_ENV, DATABASE_URL_ENV)  # the database URL may hold its password


def _connector(args: argparse.Namespace) -> Connector:
    return Connector(vault=open_vault(args))


def register(subparsers: Any) -> None:
    """Add ``credentials add|reauthorize``, ``test-connect`` and ``run``."""
    scoped = vault_options()
    credentials = credentials_subparsers(subparsers)
    add = command(
        credentials,
        "add",
        _add,
        scoped,
        summary="add a credential and sign in (authorization-code flow)",
    )
    add.add_argument("--name", required=True, help="Connector Name (unique in the workspace)")
    add.set_defaults(names_credential=True)  # NAME in a `run:` line
    add.add_argument(
        "--auth-type",
        default="oauth2_authorization_code",
        choices=("oauth2_authorization_code", "oauth2_refresh_token"),
    )
    add.add_argument("--server-url", required=True, help="e.g. https://start.exactonline.nl")
    add.add_argument("--client-id", required=True)
    add.add_argument(
        "--redirect-uri",
        help="the app's registered redirect URI; required for oauth2_authorization_code",
    )
    add.add_argument(
        "--secrets-stdin",
        action="store_true",
        help='read {"client_secret": …, "refresh_token": …} as JSON from standard input',
    )
    _sign_in_options(add)

    again = command(
        credentials,
        "reauthorize",
        _reauthorize,
        scoped,
        summary="sign in again for an existing credential (also one left pending)",
    )
    again.add_argument("name", help="connector name or credential id")
    again.set_defaults(names_credential=True)  # NAME in a `run:` line
    _sign_in_options(again)

    test = command(subparsers, "test-connect", _test_connect, scoped)
    test.add_argument("name", help="connector name or credential id")
    test.set_defaults(names_credential=True)  # NAME in a `run:` line
    test.add_argument("--json", action="store_true", help="print the report as JSON")

    run = command(subparsers, "run", _run, scoped)
    run.add_argument("action", help="action id, e.g. list_or_get_endpoint")
    run.add_argument("--credential", required=True, help="connector name or credential id")
    run.add_argument(
        "--input", required=True, metavar="FILE", help="JSON input file, or - for stdin"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print the request it would send, and stop"
    )
    shape = run.add_mutually_exclusive_group()
    shape.add_argument(
        "--json", action="store_true", help="print the whole result envelope, on success or not"
    )
    shape.add_argument(
        "--ndjson",
        action="store_true",
        help="list_or_get_endpoint: print records as they arrive, one JSON object a line",
    )


def _sign_in_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL without opening it"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the sign-in (300)"
    )
    parser.add_argument("--json", action="store_true", help="print the Test Connect report as JSON")


def _secrets(args: argparse.Namespace, wanted: tuple[str, ...]) -> dict[str, str]:
    if args.secrets_stdin:
        try:
            given = json.loads(sys.stdin.read(_MAX_INPUT))
        except ValueError:
            raise InputError("Standard input is not a JSON object of secrets.") from None
        if not isinstance(given, dict):
            raise InputError("Standard input is not a JSON object of secrets.")
        return {k: str(given[k]) for k in wanted if given.get(k)}
    if not sys.stdin.isatty():
        raise InputError(
            "Secrets are read from a terminal or with --secrets-stdin, never from arguments.",
            hint="Pipe a JSON object to the command and pass --secrets-stdin.",
        )
    import getpass  # a terminal's secret prompt; `run` never needs it

    labels = {"client_secret": "Client Secret: ", "refresh_token": "Refresh Token: "}
    return {name: getpass.getpass(labels[name]) for name in wanted}


def _add(args: argparse.Namespace) -> int:
    from exact_connector.cli._callback import is_loopback_redirect

    if args.auth_type == "oauth2_authorization_code" and not args.redirect_uri:
        raise InputError(
            "The browser sign-in needs the redirect URI registered for the app.",
            errors=[{"path": "$.redirect_uri", "code": "required", "message": "is required"}],
            hint="Pass --redirect-uri (for the sandbox: the redirect_uri it prints).",
        )
    if args.secrets_stdin and not is_loopback_redirect(args.redirect_uri or "http://127.0.0.1"):
        raise InputError(
            "With --secrets-stdin, standard input is not free for pasting the sign-in address.",
            errors=[{"path": "$.redirect_uri", "code": "not_loopback", "message": "not loopback"}],
            hint="Use an http://127.0.0.1:PORT/… redirect URI, or type the secret at a terminal.",
        )
    connector = _connector(args)
    wanted = _SECRET_FIELDS if args.auth_type == "oauth2_refresh_token" else _SECRET_FIELDS[:1]
    form: dict[str, Any] = {
        "connector_name": args.name,
        "auth_type": args.auth_type,
        "server_url": args.server_url,
        "client_id": args.client_id,
        **_secrets(args, wanted),
    }
    if args.redirect_uri:
        form["redirect_uri"] = args.redirect_uri
    credential = connector.credentials.begin(form)
    sys.stderr.write(f"Stored credential {credential.connector_name} ({credential.id}), pending.\n")
    return _finish(connector, credential, args)


def _reauthorize(args: argparse.Namespace) -> int:
    connector = _connector(args)
    credential = connector.credentials.get(args.name)
    if credential.auth_type == "oauth2_refresh_token" and credential.status != "pending":
        raise ReauthRequired(
            "A pasted refresh token cannot be renewed here; remove the credential and add it "
            "again with a new refresh token.",
        )
    # Pending (its Test Connect failed, e.g. a refresh token too new to use yet): test it again.
    return _finish(connector, credential, args)


def complete_sign_in(
    connector: Connector,
    credential: Credential,
    *,
    open_url: Any = None,
    timeout: float = 300.0,
    announce: Any = None,
    progress: Progress | None = None,
) -> Credential:
    """Run the browser sign-in: listen on the redirect URI, show the URL, trade the code.

    ``progress`` hears a :class:`SignInWait` while the listener waits for the browser.
    """
    # The sign-in's listener (an HTTP server) is loaded by the commands that sign in, not by `run`.
    from exact_connector.cli._callback import (
        CallbackListener,
        is_loopback_redirect,
        sandbox_refusal,
    )

    redirect = credential.redirect_uri or ""
    state = new_state()
    url = connector.authorization_url(credential, state)
    if parse_server_url(credential.server_url, allow_sandbox=True).is_sandbox:
        refused = sandbox_refusal(url)
        if refused is not None:
            raise ConfigError(
                refused,
                details={
                    "errors": [
                        {
                            "path": "$.redirect_uri",
                            "code": "not_registered",
                            "message": "not registered for this client_id in the sandbox",
                        }
                    ]
                },
                hint="Use the redirect_uri and client_id that `exact-connector sandbox` prints: "
                "`exact-connector credentials remove NAME`, then add it again with them.",
            )
    if not is_loopback_redirect(redirect):
        if announce is not None:
            announce(url)
        try:
            pasted = input("Paste the full address your browser was sent to: ")
        except EOFError:
            raise InputError(
                "Standard input ended before the sign-in address was pasted.",
                errors=[{"path": "$.redirect", "code": "missing", "message": "nothing pasted"}],
                hint="Run the command at a terminal, or use a loopback redirect URI.",
            ) from None
        query = _pasted_query(pasted)
    else:
        with CallbackListener(redirect) as listener:
            if announce is not None:
                announce(url)
            if open_url is not None:
                open_url(url)
            until = datetime.now(UTC) + timedelta(seconds=timeout)
            emit(progress, SignInWait(credential.connector_name, until))
            query = listener.wait(timeout)
    if "error" in query:
        raise InputError(
            "The sign-in was not completed: Exact Online reported that access was denied.",
            errors=[{"path": "$.consent", "code": "denied", "message": "access denied"}],
        )
    code = SecretStr(query.pop("code", ""))  # no plain copy left in this frame
    return connector.complete_authorization(credential, code, query.get("state", ""))


def _pasted_query(pasted: str) -> dict[str, str]:
    """The query of the address a person pasted; anything unreadable is a clear input error."""
    try:
        query = dict(httpx.URL(pasted.strip()).params)
    except (httpx.InvalidURL, ValueError):
        query = {}
    if "code" not in query and "error" not in query:
        raise InputError(
            "That is not the address Exact Online redirected to (it has no code).",
            errors=[{"path": "$.redirect", "code": "format", "message": "no code in the address"}],
            hint="Copy the whole address from the browser after signing in, and paste it.",
        )
    return query


def _finish(connector: Connector, credential: Credential, args: argparse.Namespace) -> int:
    if credential.auth_type == "oauth2_authorization_code":

        def announce(url: str) -> None:
            sys.stderr.write(f"Sign in to Exact Online at:\n  {url}\n")
            sys.stderr.flush()

        opener = None if args.no_browser else open_browser
        with progress_on_stderr(f"sign-in {credential.connector_name}") as progress:
            credential = complete_sign_in(
                connector,
                credential,
                open_url=opener,
                timeout=args.timeout,
                announce=announce,
                progress=progress,
            )
    report = connector.test_connect(credential)
    _print_report(report, args.json)
    if not report["ok"]:
        return _report_exit(report, pending=True)
    connector.credentials.activate(credential)
    sys.stderr.write(f"Credential {credential.connector_name} is active.\n")
    return 0


def open_browser(url: str) -> bool:
    """Open ``url`` in the person's browser, a child process that gets no key material (J9).

    The browser inherits this process's environment, so the vault key is out of it while the
    browser starts (the vault already holds its keys in memory), and put back afterwards.
    """
    import webbrowser

    held = {name: os.environ.pop(name) for name in KEY_MATERIAL if name in os.environ}
    try:
        return webbrowser.open(url)
    finally:
        os.environ.update(held)


def _test_connect(args: argparse.Namespace) -> int:
    report = _connector(args).test_connect(args.name)
    _print_report(report, args.json)
    return _report_exit(report)


def _report_exit(report: dict[str, Any], *, pending: bool = False) -> int:
    """0, or the first failed check as one error line on stderr and its category's exit code.

    ``pending``: the credential was just added or signed in again, and stays pending; a failure
    that passes with time says how to finish it then."""
    failed = next((check for check in report["checks"] if not check["ok"]), None)
    if failed is None:
        return 0
    hint = failed["remediation"] or "See the report above."
    if pending and failed.get("retry_at"):
        hint = (
            "The credential stays pending. After the time above, finish it with "
            "`exact-connector credentials reauthorize NAME`."
        )
    return fail_with(
        {
            "code": failed["code"] or "test_connect_failed",
            "category": failed.get("category") or Category.CONFIG.value,
            "message": f"Test Connect failed at {failed['name']}: {failed['summary']}",
            "hint": hint,
            "retry_at": failed.get("retry_at"),
        }
    )


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    for check in report["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        sys.stdout.write(f"{mark} {check['name']:<18} {check['summary']}\n")
        if check.get("warning"):
            sys.stdout.write(f"     warning: {check['warning']}\n")
        if check.get("remediation") and not check["ok"]:
            sys.stdout.write(f"     fix: {check['remediation']}\n")
    sys.stdout.write("Test Connect passed.\n" if report["ok"] else "Test Connect failed.\n")


def read_input(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read(_MAX_INPUT + 1) if source == "-" else _read_file(source)
    except OSError as error:
        reason = (error.strerror or "unreadable").lower()
        raise InputError(
            f"The input file cannot be read: {reason}.",
            errors=[{"path": "$", "code": "file", "message": reason}],
            hint="Pass an existing JSON file with --input, or - to read standard input.",
        ) from None
    except ValueError:
        text = ""
    if len(text) > _MAX_INPUT:  # read one character past the limit to tell
        raise InputError(
            f"The input is larger than {_MAX_INPUT // (1024 * 1024)} MB.",
            errors=[{"path": "$", "code": "size", "message": "larger than the input limit"}],
            hint="Pass a smaller input: a step's input is its fields, not a file's contents.",
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InputError(
            "The input is not readable JSON.",
            errors=[{"path": "$", "code": "json", "message": "not a JSON document"}],
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            "The input must be a JSON object.",
            errors=[{"path": "$", "code": "type", "message": "expected an object"}],
        )
    return data


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read(_MAX_INPUT + 1)


def _run(args: argparse.Namespace) -> int:
    connector = _connector(args)
    inputs = read_input(args.input)
    if args.dry_run:
        print_json(connector.plan(args.action, args.credential, inputs))
        return 0
    if args.ndjson:
        if args.action != "list_or_get_endpoint" or inputs.get("id") not in (None, ""):
            raise InputError(
                "--ndjson streams lists: use it with list_or_get_endpoint and no id.",
                errors=[{"path": "$.id", "code": "ndjson", "message": "only for lists"}],
            )
        with progress_on_stderr(args.action) as progress:
            for record in connector.stream(args.credential, inputs, progress=progress):
                sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        return 0
    with progress_on_stderr(args.action) as progress:
        result = connector.execute(args.action, args.credential, inputs, progress=progress)
    if args.json:
        print_json(result)
    elif result["ok"]:
        print_json(result["data"])
    return 0 if result["ok"] else fail_with(result["error"])
