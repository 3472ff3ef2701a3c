"""A write leaves one audit line (who, when, where, which record; never a payload or a secret),
and nothing is built for a logger that would drop it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from actions_harness import Bench, signed_in_bench

from exact_connector import audit

DIVISION = 100001
NOTE = "audit-payload-never-logged"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    with signed_in_bench(Path(tmp_path_factory.mktemp("audit"))) as signed_in:
        yield signed_in


def _create(bench: Bench) -> dict[str, object]:
    item = next(r for r in bench.sb.records(DIVISION, "logistics/Items") if r["IsTime"])
    project = bench.sb.records(DIVISION, "project/Projects")[0]
    data = {"Project": project["ID"], "Item": item["ID"], "Quantity": 1.5, "Notes": NOTE}
    result = bench.connector.execute(
        "create_project_time_transaction",
        bench.credential_id,
        {"division": DIVISION, "data": data},
    )
    assert result["ok"] is True, result
    return dict(result)


def test_a_write_leaves_one_line_without_its_payload(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="exact_connector.audit"):
        created = _create(bench)
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "exact_connector.audit"
    ]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "action.create_project_time_transaction"
    assert (line["division"], line["ok"], line["credential_id"]) == (
        DIVISION,
        True,
        bench.credential_id,
    )
    assert line["id"] == created["data"]["record"]["ID"]  # type: ignore[index]
    assert NOTE not in caplog.text


def test_nothing_is_built_for_a_logger_that_drops_it(
    bench: Bench, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[object] = []

    class Spy:
        """Stands in for the module's datetime: the first thing a line is built from."""

        @staticmethod
        def now(tz: object) -> object:
            built.append(tz)
            return datetime.now(UTC)

    monkeypatch.setattr(audit, "datetime", Spy)
    logging.getLogger("exact_connector.audit").setLevel(logging.WARNING)
    try:
        _create(bench)
    finally:
        logging.getLogger("exact_connector.audit").setLevel(logging.NOTSET)
    assert built == []
    with caplog.at_level(logging.INFO, logger="exact_connector.audit"):
        _create(bench)
    assert len(built) == 1  # the spy is in place: an emitted line is built from it
