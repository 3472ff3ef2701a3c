"""Library errors speak to any caller: their hints name no CLI command (issue 14).

An engine that embeds the plugin shows a hint to a person who has no shell. The CLI adds the
command to run itself (``exact_connector.cli._output.CLI_FIXES``), so the hints written in the
library, outside ``cli/`` and the UI, must not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import exact_connector
from exact_connector.cli import COMMANDS

PACKAGE = Path(exact_connector.__file__).parent
COMMAND = re.compile(rf"exact-connector ({'|'.join(map(re.escape, COMMANDS))})\b")


def _hint_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string written as a hint: ``hint=...`` arguments and ``hint = ...`` class fields."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        is_hint = (isinstance(node, ast.keyword) and node.arg == "hint") or (
            isinstance(node, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id == "hint" for target in node.targets)
        )
        if is_hint:
            value: ast.expr = node.value
            text = "".join(
                part.value
                for part in ast.walk(value)
                if isinstance(part, ast.Constant) and isinstance(part.value, str)
            )
            found.append((value.lineno, text))
    return found


def test_the_scan_sees_hints_and_commands() -> None:
    """The check can fail: it finds a hint naming a command in a sample."""
    sample = ast.parse('raise E("x", hint=f"run exact-connector vault init --home {h}")')
    assert [COMMAND.search(text) is not None for _, text in _hint_texts(sample)] == [True]


def test_no_library_hint_names_a_cli_command() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in {"cli", "ui"}
        for line, text in _hint_texts(ast.parse(path.read_text(encoding="utf-8")))
        if COMMAND.search(text)
    ]
    assert offenders == []
