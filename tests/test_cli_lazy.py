"""The CLI imports a command's module only when that command runs (issue 12).

Its table of commands must list exactly what the modules register, with the same help lines, and a
fresh process answering ``--version`` or ``--help`` must import none of the heavy libraries.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from exact_connector.cli import COMMAND_MODULES, COMMANDS, build_parser

HEAVY = (
    "cryptography",
    "exact_connector.runtime",
    "exact_connector.vault",
    "httpx",
    "jsonschema",
    "pydantic",
    "yaml",
)


def _commands(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help for choice in subparsers._choices_actions}


def _modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has imported once the CLI handled ``argv``."""
    script = (
        "import json, sys\n"
        "from exact_connector.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(  # our own interpreter on a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stderr.splitlines()[-1]))


def test_the_command_table_lists_what_the_modules_register() -> None:
    """Every command the modules register is in the table, in its order, with its help line."""
    registered = _commands(build_parser())
    assert registered == {name: summary for name, (_, summary) in COMMANDS.items()}
    assert list(registered) == list(COMMANDS)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []], ids=["version", "help", "bare"])
def test_version_and_help_import_nothing_heavy(argv: list[str]) -> None:
    """--version, --help and a bare call import no command module and no heavy library."""
    loaded = _modules_after(argv)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY)
    commands = sorted(
        m for m in loaded if m.removeprefix("exact_connector.cli.") in COMMAND_MODULES
    )
    assert (heavy, commands) == ([], [])


def test_a_command_imports_only_its_own_modules() -> None:
    """`endpoints --help` registers the declarations commands and no other command group."""
    loaded = _modules_after(["endpoints", "--help"])
    groups = {m.rsplit(".", 1)[1] for m in loaded if m.startswith("exact_connector.cli.")}
    assert "declarations" in groups
    assert not groups & {"connect", "sandbox", "demo"}
