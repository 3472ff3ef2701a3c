"""``exact-connector ui``: the Vault page and the step runner in a browser, on 127.0.0.1.

With ``--sandbox`` (the default when ``--home`` holds no vault and no key file yet) it starts the
embedded sandbox and a throw-away vault, as ``demo`` does, so it works with no Exact account; the
sandbox shows its consent page, as Exact would. Otherwise it serves the vault at ``--home``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from exact_connector.cli import bounded, cannot_listen, command
from exact_connector.cli.demo import sandbox_workspace
from exact_connector.cli.vault import open_vault, vault_options
from exact_connector.exceptions import ConfigError
from exact_connector.runtime import Connector
from exact_connector.vault._files import absolute_home
from exact_connector.vault.sealing import KEY_FILE_NAME
from exact_connector.vault.sqlite import DB_NAME

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``ui`` command."""
    ui = command(subparsers, "ui", _ui, vault_options())
    ui.add_argument(
        "--port",
        type=bounded(0, 65535, "--port"),
        default=0,
        help="port on 127.0.0.1 (default: any free)",
    )
    ui.add_argument(
        "--sandbox",
        action="store_true",
        help="run on the embedded sandbox with a temporary vault (default when no vault exists)",
    )
    ui.add_argument("--seed", type=int, default=1, help="sandbox data seed (default 1)")


def _web_stack() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError(
            "The UI needs its web server, which is an optional extra.",
            hint="pip install 'exact-connector[ui]'",
        ) from None


def _ui(args: argparse.Namespace) -> int:
    _web_stack()
    from exact_connector.ui import UiSettings, create_app
    from exact_connector.ui.assets import BUILD_HINT, bundle_dir
    from exact_connector.ui.guard import new_token
    from exact_connector.ui.server import bind, serve_forever

    if bundle_dir() is None:
        raise ConfigError("The UI's page is not built.", hint=BUILD_HINT)
    home = absolute_home(args.home)
    sandbox = args.sandbox or not any((home / name).exists() for name in (DB_NAME, KEY_FILE_NAME))
    try:
        sock = bind(args.port)
    except OSError as error:
        raise cannot_listen("The UI", args.port, error) from None
    port = sock.getsockname()[1]
    settings = UiSettings(origin=f"http://127.0.0.1:{port}", token=new_token())

    def serve(connector: Connector, what: str) -> int:
        sys.stdout.write(f"exact-connector ui: {what}\nOpen {settings.origin}/ (Ctrl-C stops)\n")
        sys.stdout.flush()
        serve_forever(create_app(connector, settings), sock)
        return 0

    try:
        if sandbox:
            with sandbox_workspace(
                settings.callback, seed=args.seed, auto_consent=False, app_name="exact-connector ui"
            ) as ws:
                settings.sandbox = ws.credential_form("Sandbox company")
                return serve(ws.connector, f"sandbox on {ws.base_url}, temporary vault")
        with open_vault(args) as vault:
            return serve(Connector(vault=vault), f"vault {vault.home}, workspace {vault.workspace}")
    finally:
        sock.close()
