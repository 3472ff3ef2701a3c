"""``exact-connector trigger budget``: the figures, and a refused interval as exit code 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exact_connector.cli import main


def test_budget_prints_the_daily_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every 300 s costs 312 calls a day idle, 1 call per 1,000 changes; and, once, the first
    poll from "now" reads the feed to its end, 1 call per 1,000 records (it was not counted)."""
    source = tmp_path / "input.json"
    source.write_text(json.dumps({"interval_seconds": 300}))
    assert main(["trigger", "budget", "record_changed", "--input", str(source)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["idle_calls_per_day"], printed["calls_per_1000_changes"]) == (312, 1)
    assert printed["first_poll_calls_per_1000_records"] == 1


def test_budget_refuses_an_exhausting_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interval that would use the whole day exits 3 with the field and the fix named."""
    source = tmp_path / "input.json"
    source.write_text(json.dumps({"interval_seconds": 5}))
    assert main(["trigger", "budget", "record_changed", "--input", str(source)]) == 3
    err = capsys.readouterr().err
    assert "$.interval_seconds" in err and "18 seconds" in err and "Traceback" not in err


def test_budget_counts_the_feeds_of_one_division(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--feeds N: N feeds of one division polled at the interval share its day (3 x 312)."""
    source = tmp_path / "input.json"
    source.write_text(json.dumps({"interval_seconds": 300}))
    assert (
        main(["trigger", "budget", "record_changed", "--input", str(source), "--feeds", "3"]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert (printed["feeds"], printed["idle_calls_per_day"]) == (3, 936)


@pytest.mark.parametrize(("feeds", "named"), [("0", "$.feeds"), ("3000", "$.feeds")])
def test_budget_refuses_feeds_no_interval_can_pay_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], feeds: str, named: str
) -> None:
    """No feeds, or more than even daily polls can pay for: exit 3, the field named."""
    source = tmp_path / "input.json"
    source.write_text(json.dumps({"interval_seconds": 300}))
    arguments = ["trigger", "budget", "record_changed", "--input", str(source), "--feeds", feeds]
    assert main(arguments) == 3
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


@pytest.mark.parametrize("given", [{"interval": 1}, {"interval_seconds": 300, "bogus": 1}], ids=str)
def test_budget_refuses_a_field_the_trigger_has_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: dict[str, int]
) -> None:
    """``interval`` for ``interval_seconds`` was ignored: the figures of the default 300 s came
    back, exit 0, for someone asking about a 1-second interval. The poll refuses such a field."""
    source = tmp_path / "input.json"
    source.write_text(json.dumps({"division": 100001, "endpoint": "crm/Accounts", **given}))
    assert main(["trigger", "budget", "record_changed", "--input", str(source)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    wrong = next(name for name in given if name != "interval_seconds")
    assert f"$.{wrong}: is not an allowed field" in captured.err


def test_budget_takes_the_polls_own_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole input of a poll is accepted, and its interval is the one costed."""
    source = tmp_path / "input.json"
    inputs = {"division": 100001, "endpoint": "crm/Accounts", "interval_seconds": 600, "limit": 5}
    source.write_text(json.dumps(inputs))
    assert main(["trigger", "budget", "record_changed", "--input", str(source)]) == 0
    assert json.loads(capsys.readouterr().out)["idle_calls_per_day"] == 168
