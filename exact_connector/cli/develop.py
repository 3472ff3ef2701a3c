"""``options`` and ``limits reset``: what a person building a workflow looks up and undoes.

``options SOURCE`` prints the choices of a dynamic dropdown exactly as an engine gets them from
``Connector.options`` (divisions, projects, employees, hour types, accounts, records, endpoints,
fields). ``limits reset`` forgets the errors counted toward Exact's hourly error budget for one
credential's app, locally and, for a credential on the loopback sandbox, in the sandbox too.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from exact_connector.cli import command, group
from exact_connector.cli._output import print_json, print_table
from exact_connector.cli.vault import open_vault, vault_options
from exact_connector.exceptions import ConfigError, InputError
from exact_connector.options import LIVE_SOURCES, STATIC_SOURCES
from exact_connector.runtime import Connector
from exact_connector.urls import parse_server_url

__all__ = ["register"]

_SOURCES = sorted({"divisions", "records", *LIVE_SOURCES, *STATIC_SOURCES})


def register(subparsers: Any) -> None:
    """Add ``options`` and ``limits``."""
    scoped = vault_options()
    options = command(subparsers, "options", _options, scoped)
    options.add_argument("source", metavar="SOURCE", help=", ".join(_SOURCES))
    options.add_argument("--credential", metavar="NAME", help="needed for lists from Exact")
    options.add_argument("--division", metavar="N", help="the division a list is for")
    options.add_argument("--search", metavar="TEXT", help="narrow the list")
    options.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another parameter, e.g. endpoint=crm/Accounts or method=DELETE",
    )
    options.add_argument("--json", action="store_true", help="the options as JSON")

    actions = group(subparsers, "limits")
    reset = command(
        actions,
        "reset",
        _reset,
        scoped,
        summary="forget the errors counted for a credential's app (and in the sandbox)",
    )
    reset.add_argument("--credential", required=True, metavar="NAME")
    reset.add_argument("--endpoint", metavar="SERVICE/ENDPOINT", help="only this endpoint")


def _params(args: argparse.Namespace) -> dict[str, str]:
    params: dict[str, str] = {}
    for index, pair in enumerate(args.param):
        key, equals, value = pair.partition("=")
        if not (equals and key and value):
            raise InputError(
                "--param takes KEY=VALUE, e.g. endpoint=crm/Accounts.",
                errors=[
                    {"path": f"$.param[{index}]", "code": "format", "message": "not KEY=VALUE"}
                ],
            )
        params[key] = value
    for name in ("division", "search"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    return params


def _check_source(args: argparse.Namespace) -> None:
    """A mistyped SOURCE, or a live one without ``--credential``: a usage problem of this command,
    said with the sources there are (not the library's "fix the connector configuration")."""
    import difflib

    name = args.source.partition("?")[0]
    if name not in _SOURCES:
        close = difflib.get_close_matches(name, _SOURCES, n=1)
        meant = f" (did you mean {close[0]}?)" if close else ""
        raise InputError(
            f"There is no options source {name!r}{meant}.",
            errors=[{"path": "$.source", "code": "unknown", "message": f"not a source{meant}"}],
            hint="Sources: " + ", ".join(_SOURCES) + ".",
        )
    if args.credential is None and name not in STATIC_SOURCES:
        raise InputError(
            f"The options {name!r} are read from Exact Online: they need a credential.",
            errors=[{"path": "$.credential", "code": "required", "message": "is required"}],
            hint="Pass --credential NAME (see: exact-connector credentials list).",
        )


def _options(args: argparse.Namespace) -> int:
    _check_source(args)
    params = _params(args)
    if args.credential is None:
        found = Connector(vault=None).options(args.source, **params)
    else:
        with open_vault(args) as vault:
            found = Connector(vault=vault).options(args.source, args.credential, **params)
    if args.json:
        print_json(found)
        return 0
    rows = [(o["value"], o["label"], o.get("description") or "") for o in found]
    print_table(rows, ["VALUE", "LABEL", "DESCRIPTION"])
    return 0


def _reset(args: argparse.Namespace) -> int:
    with open_vault(args) as vault:
        connector = Connector(vault=vault)
        credential = connector.credentials.get(args.credential)
        forgotten = connector.governor.reset_errors(credential.client_id, args.endpoint)
        connector.governor.close()
    print(f"local: {forgotten} counted error(s) forgotten for {credential.connector_name}")
    origin = parse_server_url(credential.server_url, allow_sandbox=True)
    if origin.is_sandbox:
        from exact_connector.sandbox.app import RESET_PATH  # the simulator, only when it is used

        query = {"client_id": credential.client_id}
        if args.endpoint:
            query["endpoint"] = args.endpoint
        url = origin.join(RESET_PATH).copy_merge_params(query)
        try:
            answer = httpx.post(url, timeout=5.0, trust_env=False)
        except httpx.TransportError:
            raise ConfigError(
                "The sandbox did not answer; only the local count was reset.",
                details={"host": origin.host, "port": origin.port},
                hint="Start it with: exact-connector sandbox (then run limits reset again).",
            ) from None
        if answer.status_code != 200:
            raise ConfigError(
                f"The sandbox refused the reset (HTTP {answer.status_code}).",
                hint="Is this credential's client id the sandbox's app?",
            )
        print(f"sandbox: blocks lifted on {answer.json()['scopes_reset']} endpoint(s)")
    return 0
