"""Printing for the CLI: JSON for machines, aligned text for people, errors as one line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from exact_connector.exceptions import ExactConnectorError

__all__ = ["fail", "print_json", "print_table"]


def print_json(data: Any) -> None:
    """Deterministic, indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    """A plain aligned table on stdout."""
    table = [list(map(str, headers)), *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        sys.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        sys.stdout.write("\n")


def fail(error: ExactConnectorError) -> int:
    """Print an error as ``error[code]: message``, its field errors, and a hint; return its code."""
    sys.stderr.write(f"error[{error.code}]: {error.message}\n")
    for item in error.details.get("errors", []):
        where = " ".join(str(item[key]) for key in ("file", "path") if item.get(key))
        code = f" [{item['code']}]" if item.get("code") else ""
        sys.stderr.write(f"  {where or '$'}: {item.get('message', '')}{code}\n")
    sys.stderr.write(f"hint: {error.hint}\n")
    return error.exit_code
