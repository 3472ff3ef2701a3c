"""Printing for the CLI: data on stdout, errors as one line plus a hint on stderr.

The contract every command keeps: stdout carries data only (JSON with ``--json``, a table or
text otherwise); a failure prints ``error[code]: message``, its field errors and a hint on
stderr, and exits with its category's code; with ``--json`` the envelope
``{ok, error}`` is on stdout as well. A reader that closes the pipe early ends the command
quietly with exit 141, as a shell reports a process ended by SIGPIPE.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from exact_connector.exceptions import EXIT_CODES, Category, ExactConnectorError

__all__ = [
    "CLOSED_PIPE",
    "closed_pipe",
    "fail",
    "fail_with",
    "print_json",
    "print_table",
    "run_for",
    "run_in",
    "write_out",
]

#: 128 + SIGPIPE: what a shell reports for a writer whose reader went away.
CLOSED_PIPE = 141

#: The command that fixes an error, by code: the library's hints name no CLI command.
CLI_FIXES = {
    "reauth_required": "exact-connector credentials reauthorize NAME",
    "credential_not_active": "exact-connector credentials reauthorize NAME",
    "credential_pending": "exact-connector credentials reauthorize NAME",
    "credential_not_found": "exact-connector credentials list",
    "vault_locked": "exact-connector vault init",
    "error_budget_protect": "exact-connector limits reset --credential NAME",
    "division_not_allowed": "exact-connector credentials reauthorize NAME",  # to grant it
}


def write_out(text: str) -> None:
    """Write ``text`` to stdout in full. When a pipe's reader goes away during a write larger
    than the pipe holds, the binary layer returns a short count, which the text layer ignores:
    the rest was dropped and the command exited 0. Writing the rest here makes the closed pipe
    raise BrokenPipeError (exit 141), as for a reader that left earlier."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    encoded = text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict")
    view = memoryview(encoded)
    while view:
        written = buffer.write(view)
        view = view[len(view) if written is None else written :]


def print_json(data: Any) -> None:
    """Deterministic, indented JSON on stdout."""
    write_out(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    """A plain aligned table on stdout, one line a row: a cell's control and format characters
    (text typed by anyone in an administration: a line break, a terminal's escape, a direction
    override) are shown as spaces, so no cell can add a row or command the terminal."""
    table = [list(map(str, headers)), *[[_cell(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table)
    write_out("".join(line + "\n" for line in lines))


def _cell(value: object) -> str:
    text = str(value)
    if text.isprintable():  # the usual case, tested at C speed
        return text
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def run_in(place: Sequence[str]) -> None:
    """The vault options this command runs with (``--home DIR``): the command that fixes an
    error (``run:``) needs them too, or it would act on another vault."""
    global _place
    _place = tuple(place)


_place: tuple[str, ...] = ()


def run_for(credential: str | None) -> None:
    """The credential this command names: ``NAME`` in the command that fixes an error (``run:``)
    is it, so the line can be pasted as it is."""
    global _credential
    _credential = credential


_credential: str | None = None


def fail(error: ExactConnectorError) -> int:
    """Print an error as ``error[code]: message``, its field errors, and a hint; return its code."""
    return fail_with(error.to_dict())


def fail_with(error: Mapping[str, Any]) -> int:
    """:func:`fail` for an error already in its envelope form (``ExactConnectorError.to_dict``)."""
    sys.stderr.write(f"error[{error['code']}]: {error['message']}\n")
    listed = error.get("details", {}).get("errors")
    listed = listed if isinstance(listed, list) else []  # a count elsewhere (error budget)
    for item in listed:
        where = " ".join(str(item[key]) for key in ("file", "path") if item.get(key))
        code = f" [{item['code']}]" if item.get("code") else ""
        sys.stderr.write(f"  {where or '$'}: {item.get('message', '')}{code}\n")
    if error.get("retry_at"):
        sys.stderr.write(f"retry at: {error['retry_at']}\n")
    hint = str(error["hint"])
    if listed:  # written for engines; here the fields are the lines just above it
        hint = hint.replace("listed in details.errors", "listed above")
    if _credential and "exact-connector" in hint:  # a command in the hint: its NAME is this one
        quoted = shlex.quote(_credential)
        hint = re.sub(r"\bNAME\b", lambda _: quoted, hint)
    sys.stderr.write(f"hint: {hint}\n")
    if (command := _fix(error)) is not None:
        where = "".join(f" {shlex.quote(option)}" for option in _place)
        if _credential:
            command = command.replace("NAME", shlex.quote(_credential))
        sys.stderr.write(
            f"run: {command.replace('exact-connector', 'exact-connector' + where, 1)}\n"
        )
    return EXIT_CODES[Category(error["category"])]


def _fix(error: Mapping[str, Any]) -> str | None:
    """The command that fixes ``error``, if one does: a vault that exists without its key is
    not opened by a new key (``vault init`` refuses there), only by restoring its own."""
    if error["code"] == "vault_locked" and "vault" in error.get("details", {}):
        return None
    return CLI_FIXES.get(error["code"])


def closed_pipe() -> int:
    """The reader of stdout is gone: drop what is still buffered, say nothing, exit 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout was never a real file (captured in-process)
        pass
    return CLOSED_PIPE
