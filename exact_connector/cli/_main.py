"""The parser, the command table and the dispatch behind :mod:`exact_connector.cli`.

Imported only once a command needs parsing (a bare ``--version`` is answered without it).
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from exact_connector import __version__
from exact_connector.cli._output import closed_pipe, fail, print_json, run_for, run_in
from exact_connector.exceptions import ConfigError, ExactConnectorError, InputError

__all__ = [
    "COMMANDS",
    "COMMAND_MODULES",
    "bounded",
    "build_parser",
    "cannot_listen",
    "command",
    "group",
    "run",
]

Handler = Callable[[argparse.Namespace], int]

#: Every command, in ``--help`` order: the modules that register it and its line in ``--help``.
#: Only the modules of the command being run are imported, so ``--version`` and ``--help`` import
#: none of them (tests/test_cli_lazy.py checks this table against what the modules register).
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "manifest": (("declarations",), "show what the connector declares"),
    "form": (("declarations",), "show a generated form"),
    "validate": (
        ("declarations",),
        "check a JSON document against a form (values never echoed)",
    ),
    "endpoints": (
        ("declarations",),
        "list catalog endpoints, or show one's fields (endpoints show ID)",
    ),
    "vault": (("vault",), "create, check and re-key the credential store"),
    "credentials": (("vault", "connect"), "add, reauthorize, list, show and remove credentials"),
    "test-connect": (("connect",), "check a credential against Exact Online"),
    "run": (("connect",), "run an action; JSON in, JSON out"),
    "options": (
        ("develop",),
        "list a dropdown's choices (divisions, projects, …) as an engine gets them",
    ),
    "limits": (("develop",), "reset the local error budget (development)"),
    "trigger": (("trigger",), "poll triggers; subscribe webhooks"),
    "sandbox": (("sandbox",), "run the Exact Online simulator on 127.0.0.1"),
    "demo": (("demo",), "run every action against the embedded sandbox and show what happened"),
    "ui": (("ui",), "serve the Vault page and the step runner on 127.0.0.1"),
}

#: Command-group modules, in the order their commands are listed by ``--help``.
COMMAND_MODULES: tuple[str, ...] = tuple(
    dict.fromkeys(module for modules, _ in COMMANDS.values() for module in modules)
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command listed, the modules of those named in ``argv`` (all of
    them when ``argv`` is None) registered in full, the others by name and help line only."""
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
    named = COMMANDS if argv is None else [arg for arg in argv if arg in COMMANDS]
    modules = dict.fromkeys(module for command in named for module in COMMANDS[command][0])
    for name in modules:
        importlib.import_module(f"exact_connector.cli.{name}").register(subparsers)
    for command, (_, summary) in COMMANDS.items():
        if command not in subparsers.choices:
            subparsers.add_parser(command, help=summary)
    for command in named:
        _take_vault_options(subparsers.choices[command])
    return parser


def _take_vault_options(parser: argparse.ArgumentParser) -> bool:
    """``--home`` and ``--workspace`` are taken after any command, as before it: a command that
    opens no vault (``endpoints``, ``manifest``, ``trigger budget``...) accepts and ignores them,
    so a script may pass them to every command. Whether ``parser`` or a command under it opens a
    vault (then a group above it must not take them: the command's default would overwrite them)."""
    opens = "--home" in parser._option_string_actions
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                opens = _take_vault_options(child) or opens
    if not opens:
        parser.add_argument("--home", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        parser.add_argument("--workspace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return opens


def run(argv: Sequence[str] | None, *, own_process: bool = False) -> int:
    """Run the CLI; returns the process exit code. ``own_process``: see
    :func:`exact_connector.cli.console`; in a process of its own, SIGTERM (``kill``, a service
    manager, ``docker stop``) stops a command as Ctrl-C does: its clean-up runs, exit 130."""
    if own_process:
        signal.signal(signal.SIGTERM, _interrupt)
    if sys.stdout is None:  # started with stdout closed (``>&-``)
        return fail(
            ConfigError(
                "Standard output is closed, so the command has nowhere to write.",
                hint="Run it with stdout open: redirect it to a file or to /dev/null.",
            )
        )
    try:
        try:
            return _dispatch(argv, own_process)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()  # here, where a closed pipe can still be answered quietly
    except BrokenPipeError:
        return closed_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # stdout cannot take the output (a full disk, say)
        if not _is_output_error(error):
            raise
        return fail(
            ConfigError(
                f"Writing failed ({error.strerror or error}): the output, or a file the command "
                "writes, cannot be written.",
                hint="Make room on the disk, or send the output elsewhere.",
            )
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _is_output_error(error: OSError) -> bool:
    """Whether ``error`` is one a write fails with (a full disk or quota, an I/O error, a closed
    descriptor); any other OSError here is a bug of ours and keeps its traceback."""
    return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EBADF, errno.EFBIG)


def _dispatch(argv: Sequence[str] | None, own_process: bool) -> int:
    run_in(())  # until this command's options are read (an earlier one's ran in-process)
    run_for(None)
    try:
        argv = _utf8_arguments(sys.argv[1:] if argv is None else argv)
    except InputError as error:
        return fail(error)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    _place_top_level(args)
    run_in(_place(args))
    named = getattr(args, "credential", None)
    if named is None and getattr(args, "names_credential", False):
        named = args.name
    run_for(named if isinstance(named, str) else None)
    if own_process:  # the command's modules are loaded: what they made lives as long as we do
        gc.freeze()
        gc.enable()
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


def _place(args: argparse.Namespace) -> list[str]:
    """The vault options this command ran with, as global options of another command."""
    place = []
    if getattr(args, "home", None) is not None:
        place += ["--home", str(args.home)]
    if getattr(args, "workspace", None) not in (None, "default"):
        place += ["--workspace", str(args.workspace)]
    return place


def _place_top_level(args: argparse.Namespace) -> None:
    """``exact-connector --home DIR cmd`` means ``exact-connector cmd --home DIR``."""
    if args.top_home is not None and getattr(args, "home", None) is None:
        args.home = args.top_home
    if args.top_workspace is not None and getattr(args, "workspace", None) in (None, "default"):
        args.workspace = args.top_workspace


def _utf8_arguments(argv: Sequence[str]) -> list[str]:
    """The arguments, refused if one held bytes that are not UTF-8 (Python keeps them as lone
    surrogates, which nothing downstream can encode)."""
    for index, argument in enumerate(argv, start=1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError.at(f"argv[{index}]", "encoding", "is not valid UTF-8 text") from None
    return list(argv)


def command(
    subparsers: Any,
    name: str,
    handler: Handler,
    *parents: argparse.ArgumentParser,
    summary: str | None = None,
    **options: Any,
) -> argparse.ArgumentParser:
    """Add the command ``name`` that runs ``handler``; a top-level command's help line is its
    summary in :data:`COMMANDS`, a group's subcommand says its own ``summary``."""
    help_line = summary if summary is not None else COMMANDS[name][1]
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, parents=list(parents), help=help_line, **options
    )
    parser.set_defaults(handler=handler)
    return parser


def group(subparsers: Any, name: str) -> Any:
    """Add the command group ``name`` (its help line from :data:`COMMANDS`); returns the
    subparsers to add its subcommands to. The group alone prints its help and exits 2."""
    parser = command(subparsers, name, lambda _args: _usage(parser))
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")


def bounded(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argument type: a whole number from ``low`` to ``high``, else a usage error (exit 2)
    naming ``what``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high}")
        return value

    return parse


def cannot_listen(what: str, port: int, error: OSError) -> ConfigError:
    """The error for a server of ours (``what``) that cannot have its loopback port."""
    reason = error.strerror or "unavailable"
    return ConfigError(
        f"{what} cannot listen on 127.0.0.1:{port} ({reason}).",
        hint="Choose another port with --port, or --port 0 for any free port.",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2
