"""Hostile values through every CLI entry point that reads JSON (issue 11, "Done when").

``run`` (plain, ``--dry-run``, ``--ndjson``), ``validate`` and ``form --values`` get inputs with a
hostile value somewhere, as JSON text on standard input (or as the argument): the exit code is 0,
3 or 4, never 1 or a traceback, and an input refused with 3 sent nothing to the sandbox.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hostile_values import CORNERS, SETTINGS, UNSENDABLE, WHERE, as_json, place
from hypothesis import given
from hypothesis import strategies as st
from test_cli_connect import DIVISION, CliWorld
from test_cli_connect import signed_in as signed_in  # the fixtures, re-exported for pytest
from test_cli_connect import world as world

from exact_connector.limits import RateGovernor

pytestmark = pytest.mark.e2e

MARK = "__hostile__"
ENTRY_POINTS = ["run", "run --dry-run", "run --ndjson", "validate", "form --values"]


def _valid(entry: str) -> tuple[str, dict[str, Any]]:
    if entry in ("run --ndjson", "form --values"):
        return "list_or_get_endpoint", {
            "division": DIVISION,
            "endpoint": "crm/Accounts",
            "select": ["ID"],
            "limit": 2,
        }
    return "update_project_time_transaction", {
        "division": DIVISION,
        "id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        "data": {"Quantity": 2, "Notes": "hostile", "Date": "2024-05-01T09:00:00Z"},
    }


def _call(world: CliWorld, entry: str, text: str, action: str) -> tuple[int, str, str]:
    if entry == "validate":
        document = world.home.parent / "document.json"
        document.write_text(text, "utf-8", errors="surrogatepass")
        return world.cli("validate", action, str(document), home=False)
    if entry == "form --values":
        return world.cli("form", action, "--json", "--values", text)
    extra = entry.split()[1:]
    return world.cli("run", action, "--credential", "cli", "--input", "-", *extra, stdin=text)


def _hostile_text(entry: str, where: str, key: str, value: Any) -> tuple[str, str]:
    action, valid = _valid(entry)
    template = json.dumps(place(valid, where, key, MARK))
    return action, template.replace(json.dumps(MARK), as_json(value))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@SETTINGS
@given(where=WHERE, key=st.text(max_size=6), value=UNSENDABLE)
def test_an_unsendable_value_is_exit_3_with_nothing_sent(
    signed_in: CliWorld, entry: str, where: str, key: str, value: Any
) -> None:
    """Surrogates, deep nesting, NaN, huge numbers: exit 3, no traceback, zero requests."""
    action, text = _hostile_text(entry, where, key, value)
    before = signed_in.api_requests()

    code, _, err = _call(signed_in, entry, text, action)

    assert code == 3, err
    assert "Traceback" not in err
    assert signed_in.api_requests() == before


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@SETTINGS
@given(where=WHERE, key=st.text(max_size=6), value=CORNERS)
def test_a_corner_value_is_exit_0_3_or_4_never_a_crash(
    signed_in: CliWorld, entry: str, where: str, key: str, value: Any
) -> None:
    """RFC 3339 corners, leap seconds, megabyte strings: handled, classified, no traceback.

    Every example starts with a clean error budget: the sandbox's refusals of earlier examples
    (a date Exact cannot store, say) count toward the governor's hourly stop at 8, which would
    turn a later example into exit 5 however it was handled.
    """
    governor = RateGovernor(signed_in.home / "limits.db")
    governor.reset_errors(signed_in.app.client_id)
    governor.close()
    action, text = _hostile_text(entry, where, key, value)
    before = signed_in.api_requests()

    code, _, err = _call(signed_in, entry, text, action)

    assert code in (0, 3, 4), err
    assert "Traceback" not in err
    if code == 3 and entry != "run":  # a refused run may be Exact's answer; the others send none
        assert signed_in.api_requests() == before


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_number_too_long_for_python_to_read_is_exit_3(signed_in: CliWorld, entry: str) -> None:
    """A 5,000-digit number (past Python's integer-text limit): exit 3, not a ValueError trace."""
    action, text = _hostile_text(entry, "add", "big", 0)
    text = text.replace('"big": 0', '"big": ' + "9" * 5000)

    code, _, err = _call(signed_in, entry, text, action)

    assert code == 3, err
    assert "Traceback" not in err
