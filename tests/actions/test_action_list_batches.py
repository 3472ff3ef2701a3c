"""A workflow reading a list in batches: it handles and deletes (or archives) each batch before it
asks for the next with ``next_cursor``, and must miss nothing, whatever fields it selected; a
list Exact answers with 404 is told apart from a record that is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from actions_harness import Bench, signed_in_bench

DIVISION = 100001


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """A bench of its own (the module's is shared): these tests delete records."""
    with signed_in_bench(tmp_path / "vault") as made:
        yield made


def _list(bench: Bench, **inputs: object) -> dict[str, Any]:
    return bench.connector.execute(
        "list_or_get_endpoint", bench.credential_id, {"division": DIVISION, **inputs}
    )


def _delete(bench: Bench, endpoint: str, record_id: str) -> None:
    """A person (or the workflow) deletes the record in Exact between the two steps."""
    token = bench.sb.issue_tokens()["access_token"]
    url = f"https://start.exactonline.nl/api/v1/{DIVISION}/{endpoint}(guid'{record_id}')"
    answer = bench.sb(httpx.Request("DELETE", url, headers={"Authorization": f"Bearer {token}"}))
    assert answer.status_code == 204, answer.text


@pytest.mark.parametrize(
    ("endpoint", "select", "limit"),
    [
        pytest.param("project/Projects", ["Code", "Description"], 10, id="regular"),
        pytest.param("crm/Accounts", ["Code", "Name"], 10, id="regular-mid-page"),
        pytest.param("crm/Accounts", ["Code", "Name"], 70, id="bulk-twin"),
    ],
)
def test_a_cursor_of_a_list_selecting_no_key_misses_nothing_after_deletes(
    bench: Bench, endpoint: str, select: list[str], limit: int
) -> None:
    """The select leaves the ID out (the workflow needs codes and names). The cursor used to
    count rows then, and skipped one unseen record per record deleted. The key is now read for
    the cursor and taken out of the records again."""
    inputs = {"endpoint": endpoint, "select": select}
    first = _list(bench, **inputs, limit=limit)
    assert first["ok"], first.get("error")
    assert all(set(record) == set(select) for record in first["data"]["records"])
    cursor = first["data"]["next_cursor"]
    expected = _list(bench, **inputs, limit=10, cursor=cursor)["data"]["records"]

    ids = {r["Code"]: r["ID"] for r in bench.sb.records(DIVISION, endpoint)}
    for record in first["data"]["records"]:  # the workflow archives what it has handled
        _delete(bench, endpoint, ids[record["Code"]])
    second = _list(bench, **inputs, limit=10, cursor=cursor)

    assert second["ok"], second.get("error")
    assert len(expected) == 10
    assert [r["Code"] for r in second["data"]["records"]] == [r["Code"] for r in expected]


def test_a_list_answered_404_does_not_blame_an_id_that_was_not_given(bench: Bench) -> None:
    """The catalog keeps some retired or renamed paths (API-FACTS §6): a 404 to a list names
    the endpoint and the division, not "the ID" of a record the step never named."""
    bench.sb.faults.add("error", status=404, path_contains="crm/Accounts")
    result = _list(bench, endpoint="crm/Accounts", limit=5)
    assert result["ok"] is False
    error = result["error"]
    assert error["code"] == "not_found"
    assert error["details"]["errors"][0]["path"] == "$.endpoint"
    assert error["hint"].startswith("Check the endpoint and the division")
    assert "ID" not in error["hint"]
