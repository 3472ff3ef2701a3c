"""The ``exact-connector`` command line: one parser, one place that turns errors into exit codes.

Each command group lives in its own module under this package and exposes
``register(subparsers)``; a command's handler takes the parsed arguments and returns an exit code.
Errors raised by handlers are printed as one line plus a hint on stderr, never as a traceback
(the output contract is in :mod:`exact_connector.cli._output`). ``--home`` and ``--workspace``
may come before the command as well as after it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from exact_connector import __version__
from exact_connector.cli._output import closed_pipe, fail, print_json
from exact_connector.exceptions import ExactConnectorError

__all__ = ["main"]

#: Command-group modules, in the order their commands are listed by ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "declarations",
    "vault",
    "connect",
    "develop",
    "trigger",
    "sandbox",
    "demo",
    "ui",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="exact-connector",
        description="Exact Online connector for workflow-automation engines.",
    )
    parser.add_argument("--version", action="version", version=f"exact-connector {__version__}")
    parser.add_argument(
        "--home", dest="top_home", type=Path, metavar="DIR", help="vault directory, for any command"
    )
    parser.add_argument(
        "--workspace", dest="top_workspace", metavar="NAME", help="workspace, for any command"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"exact_connector.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (the console script exits with it)."""
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # here, where a closed pipe can still be answered quietly
    except BrokenPipeError:
        return closed_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _place_top_level(args)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except ExactConnectorError as error:
        if getattr(args, "json", False):
            action = getattr(args, "action", None)
            named = {"action": action} if isinstance(action, str) else {}
            print_json({"ok": False, **named, "error": error.to_dict()})
        return fail(error)


def _place_top_level(args: argparse.Namespace) -> None:
    """``exact-connector --home DIR cmd`` means ``exact-connector cmd --home DIR``."""
    if args.top_home is not None and getattr(args, "home", None) is None:
        args.home = args.top_home
    if args.top_workspace is not None and getattr(args, "workspace", None) in (None, "default"):
        args.workspace = args.top_workspace
