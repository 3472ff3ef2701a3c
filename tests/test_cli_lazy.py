"""The CLI imports a command's module only when that command runs (issue 12).

Its table of commands must list exactly what the modules register, with the same help lines, and a
fresh process answering ``--version`` or ``--help`` must import none of the heavy libraries (a
bare ``--version``, nothing but the package and the CLI's entry). Importing less at start must not
start anything later: log redaction is in force as soon as a module that sends secrets is loaded.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import exact_connector
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


def _fresh(body: str) -> object:
    """What ``body``, run in a fresh interpreter, leaves in ``found`` (listed before ``json`` is
    imported to report it)."""
    script = f"import sys\n{body}\nimport json\nsys.stderr.write(json.dumps(found))\n"
    result = subprocess.run(  # our own interpreter on a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stderr.splitlines()[-1])


def _modules_after(argv: list[str], entry: str = "main") -> set[str]:
    """The modules a fresh interpreter has imported once the CLI's ``entry`` handled ``argv``."""
    run = f"main({argv!r})" if entry == "main" else f"sys.argv[1:] = {argv!r}; console()"
    found = _fresh(
        f"from exact_connector.cli import {entry}\n"
        "try:\n"
        f"    {run}\n"
        "except SystemExit:\n"
        "    pass\n"
        "found = sorted(sys.modules)"
    )
    assert isinstance(found, list)
    return set(found)


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


@pytest.mark.parametrize("entry", ["main", "console"])
def test_a_bare_version_imports_only_the_package_and_the_entry(entry: str) -> None:
    """`exact-connector --version` loads no parser, logging, typing or pathlib: only what a bare
    interpreter has, the package, and the CLI's entry module."""
    baseline = set(_fresh("found = sorted(sys.modules)"))  # type: ignore[arg-type]
    added = _modules_after(["--version"], entry) - baseline
    assert added <= {"__future__", "gc", "exact_connector", "exact_connector.cli"}
    assert "exact_connector.cli" in added


def test_the_console_entry_prints_the_version() -> None:
    """The fast answer is argparse's: the program name and the manifest's version, exit 0."""
    result = subprocess.run(  # our own interpreter, the console entry as the script runs it
        [sys.executable, "-m", "exact_connector", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert (result.stdout, result.stderr) == (
        f"exact-connector {exact_connector.__version__}\n",
        "",
    )


_VERSION_TEXT = st.lists(st.text(alphabet="version: 0.1#\t\r\x0bx", max_size=16), max_size=5).map(
    "\n".join
)


@given(_VERSION_TEXT)
def test_the_version_is_read_with_the_builds_pattern(text: str) -> None:
    """The package reads connector.yaml's version without ``re``; it finds what the build's
    pattern (pyproject's ``tool.hatch.version``) finds, on any text."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text("utf-8"))
    found = re.search(pyproject["tool"]["hatch"]["version"]["pattern"], text)
    expected = found["version"] if found is not None else None
    assert exact_connector._version_in(text) == expected


def test_the_console_entry_freezes_the_start_and_collects_again() -> None:
    """In its own process the CLI keeps the collector off while loading, then freezes what loading
    made and turns the collector back on; ``main`` in someone else's process does neither."""
    found = _fresh(
        "import gc\n"
        "from exact_connector.cli import console, main\n"
        "sys.argv[1:] = ['endpoints']\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "in_main = [gc.isenabled(), gc.get_freeze_count()]\n"
        "try:\n"
        "    console()\n"
        "except SystemExit:\n"
        "    pass\n"
        "found = [in_main, [gc.isenabled(), gc.get_freeze_count() > 0]]"
    )
    assert found == [[True, 0], [True, True]]


_LOADS_SECRET_HANDLING = [
    "import exact_connector.runtime",
    "import exact_connector.client",
    "import exact_connector.auth",
    "import exact_connector.oauth",
    "import exact_connector.urls",
    "import exact_connector.sandbox",
    "import exact_connector; exact_connector.Connector",
    "import exact_connector; exact_connector.ExactClient",
    "import exact_connector; exact_connector.Sandbox",
]


@pytest.mark.parametrize("load", _LOADS_SECRET_HANDLING)
def test_redaction_is_in_force_once_secret_handling_code_is_loaded(load: str) -> None:
    """Whatever path loads a module that sends secrets, every HTTP-stack logger already carries
    the SecretFilter (checked in a fresh interpreter, before anything else imports redaction)."""
    found = _fresh(
        "import logging\n"
        f"{load}\n"
        "names = sys.modules['exact_connector.redaction']._LOGGERS\n"
        "found = {name: [type(f).__module__ + '.' + type(f).__name__\n"
        "                for f in logging.getLogger(name).filters] for name in names}"
    )
    assert isinstance(found, dict) and len(found) >= 6
    assert all(filters == ["exact_connector.redaction.SecretFilter"] for filters in found.values())


def test_importing_the_package_alone_installs_no_filter() -> None:
    """The counterpart of the test above: the package alone loads no logging machinery, so the
    filter arrives with the code that needs it, not before."""
    found = _fresh("import exact_connector\nfound = 'logging' in sys.modules")
    assert found is False


def test_the_run_command_loads_no_sign_in_or_terminal_machinery() -> None:
    """`run`'s module leaves the browser, the secret prompt and the callback listener unloaded,
    and a piped step's progress never loads rich (both are for people at a terminal). As in an
    install without httpx's own command line (click), whose import would load rich itself."""
    found = _fresh(
        "sys.modules['click'] = None\n"
        "import os\n"
        "for name in ('FORCE_COLOR', 'TTY_COMPATIBLE'):\n"
        "    os.environ.pop(name, None)\n"
        "import exact_connector.cli.connect\n"
        "from exact_connector.cli._progress import progress_on_stderr\n"
        "with progress_on_stderr('run') as progress:\n"
        "    pass\n"
        "unwanted = ('webbrowser', 'getpass', 'http.server', 'exact_connector.cli._callback')\n"
        "found = sorted(m for m in sys.modules if m in unwanted or m.split('.')[0] == 'rich')\n"
        "found.append('connect' in dir(sys.modules['exact_connector.cli']))"
    )
    assert found == [True]
