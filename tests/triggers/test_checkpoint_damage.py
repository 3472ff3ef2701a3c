"""A checkpoint damaged on its way back from the engine, or in the store: refused at the ack,
or an error that says to reset the trigger, never a traceback or a filter sent to Exact."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from actions_harness import Bench
from trigger_harness import ACCOUNTS, DIVISION, poll

from exact_connector.exceptions import InputError


def _token_data(token: str) -> dict[str, Any]:
    body = token.split(".", 1)[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def _forged(token: str, **changes: object) -> str:
    """``token`` with its state changed, written as a poll writes it (no signature to break)."""
    data = _token_data(token)
    data["s"] |= changes
    raw = json.dumps(data, separators=(",", ":")).encode()
    return token.split(".", 1)[0] + "." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "changes",
    [
        {"move_checked_at": "soon"},
        {"move_checked_at": True},
        {"timestamp": "1L or Name eq 'x'"},
        {"timestamp": -1},
        {"timestamp": 1.5},
        {"move_date": 7},
        {"resyncing": "yes"},
    ],
    ids=str,
)
def test_an_ack_refuses_a_checkpoint_whose_state_a_poll_did_not_write(
    bench: Bench, changes: dict[str, object]
) -> None:
    """Only the token's shape was checked: a state with a text where the time was (or a filter
    where the row version was) was stored, and every later poll then raised a bare ValueError
    or sent Exact a filter it refused, each refusal counted against the error limit."""
    data = poll(bench, "record_changed", endpoint=ACCOUNTS)
    with pytest.raises(InputError) as caught:
        bench.connector.triggers.ack(bench.credential_id, _forged(data["checkpoint"], **changes))
    assert caught.value.errors[0]["path"] == "$.checkpoint"
    assert bench.connector.triggers.ack(bench.credential_id, data["checkpoint"]) is True


def test_a_damaged_stored_checkpoint_is_an_error_that_says_to_reset(bench: Bench) -> None:
    """A state damaged in the store (by hand, or by an older version) fails the poll with an
    envelope that says what to do, not a traceback; after a reset the trigger polls again."""
    inputs = {"division": DIVISION, "endpoint": ACCOUNTS}
    triggers = bench.connector.triggers
    data = poll(bench, "record_changed", endpoint=ACCOUNTS)
    assert triggers.ack(bench.credential_id, data["checkpoint"]) is True
    key = _token_data(data["checkpoint"])["k"]
    stored = triggers.store.load(key)
    assert stored is not None
    assert triggers.store.advance(key, stored.version, {**stored.state, "move_checked_at": "x"})
    failed = triggers.poll("record_changed", bench.credential_id, inputs)
    assert failed["ok"] is False
    assert failed["error"]["code"] == "config_error"
    assert "stored checkpoint is damaged" in failed["error"]["message"]
    assert "Reset the trigger" in failed["error"]["hint"]
    assert triggers.reset("record_changed", bench.credential_id, inputs) is True
    assert triggers.poll("record_changed", bench.credential_id, inputs)["ok"] is True
