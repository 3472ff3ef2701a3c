"""The ``exact-connector`` command line: one parser, one place that turns errors into exit codes.

Each command group lives in its own module under this package and exposes
``register(subparsers)``; a command's handler takes the parsed arguments and returns an exit code.
Errors raised by handlers are printed as one line plus a hint on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from exact_connector import __version__
from exact_connector.cli._output import fail
from exact_connector.exceptions import ExactConnectorError

__all__ = ["main"]

#: Command-group modules, in the order their commands are listed by ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "declarations",
    "vault",
    "connect",
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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"exact_connector.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except ExactConnectorError as error:
        return fail(error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
