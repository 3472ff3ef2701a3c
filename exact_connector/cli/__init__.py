"""The ``exact-connector`` command line: one parser, one place that turns errors into exit codes.

Each command group lives in its own module under this package and exposes
``register(subparsers)``, which adds its commands with :func:`command` and :func:`group` (a
top-level command's help line is written once, in :data:`COMMANDS`); a command's handler takes the
parsed arguments and returns an exit code.
Errors raised by handlers are printed as one line plus a hint on stderr, never as a traceback
(the output contract is in :mod:`exact_connector.cli._output`). ``--home`` and ``--workspace``
may come before the command as well as after it.

Starting is kept cheap: this module imports nothing but :mod:`sys` and :mod:`gc`, a bare
``--version`` is answered here, and the parser (:mod:`exact_connector.cli._main`) and a command's
modules are imported only when a command runs (tests/test_cli_lazy.py checks what each imports).
"""

from __future__ import annotations

import gc
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from exact_connector.cli._main import (
        COMMAND_MODULES,
        COMMANDS,
        bounded,
        build_parser,
        cannot_listen,
        command,
        group,
    )

__all__ = [
    "COMMANDS",
    "COMMAND_MODULES",
    "bounded",
    "build_parser",
    "cannot_listen",
    "command",
    "console",
    "group",
    "main",
]

_FROM_MAIN = frozenset(__all__) - {"console", "main"}  # the rest come from _main when asked for


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    return _start(argv, own_process=False)


def console() -> int:
    """The ``exact-connector`` script and ``python -m exact_connector``: :func:`main` in a process
    of its own.

    The cyclic garbage collector is held off while the command's modules load (they make few
    cycles and live as long as the process; collecting among them cost a ``run`` ~40 ms), then
    those objects are frozen out of later collections and the collector runs as usual for the
    command itself, however long it serves.
    """
    gc.disable()
    try:
        return _start(None, own_process=True)
    finally:
        gc.enable()


def _start(argv: Sequence[str] | None, *, own_process: bool) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if list(arguments) == ["--version"]:
        from exact_connector import __version__

        sys.stdout.write(f"exact-connector {__version__}\n")
        return 0
    from exact_connector.cli._main import run

    return run(argv, own_process=own_process)


def __getattr__(name: str) -> Any:
    if name in _FROM_MAIN:
        from exact_connector.cli import _main

        return getattr(_main, name)
    raise AttributeError(f"module 'exact_connector.cli' has no attribute {name!r}")
