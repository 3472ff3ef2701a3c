"""Paging: page sizes, absolute __next links that keep the query, determinism, big tables."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sandbox_harness import ACCEPT_JSON, DIVISION, all_pages, client_for

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

TT = f"/api/v1/{DIVISION}/project/TimeTransactions"


def _query(link: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link).query))


@pytest.fixture
def big(clock: ManualClock) -> Sandbox:
    """2,500 time transactions (so sync pages of 1000 run to three pages); no limits."""
    return Sandbox(
        seed=1, clock=clock, limits=False, rows_per_endpoint={"project/TimeTransactions": 2500}
    )


def test_regular_endpoints_page_60_rows(api: httpx.Client) -> None:
    """150 rows come as 60 + 60 + 30, each page but the last with __next."""
    sizes, response = [], api.get(TT)
    while True:
        body = response.json()["d"]
        sizes.append(len(body["results"]))
        if "__next" not in body:
            break
        response = api.get(body["__next"])
    assert sizes == [60, 60, 30]


@pytest.mark.parametrize("endpoint", ["sync/Project/TimeCostTransactions", "bulk/CRM/Accounts"])
def test_bulk_and_sync_endpoints_page_1000_rows(clock: ManualClock, endpoint: str) -> None:
    """Bulk and sync pages hold 1000 rows."""
    sandbox = Sandbox(
        clock=clock,
        limits=False,
        rows_per_endpoint={"project/TimeTransactions": 2500, "crm/Accounts": 2500},
    )
    with client_for(sandbox, sandbox.issue_tokens()["access_token"]) as api:
        first = api.get(f"/api/v1/{DIVISION}/{endpoint}", params={"$select": "ID"}).json()["d"]
        assert len(first["results"]) == 1000
        assert len(all_pages(api, f"/api/v1/{DIVISION}/{endpoint}", {"$select": "ID"})) == 2500


def test_next_is_absolute_on_the_request_host_and_keeps_the_query(
    sb: Sandbox, tokens: dict[str, str]
) -> None:
    """__next uses the caller's scheme and host and keeps $select, $filter and $orderby."""
    params = {"$select": "ID,Quantity", "$filter": "Quantity ge 1", "$orderby": "Quantity desc"}
    with httpx.Client(
        transport=httpx.MockTransport(sb),
        base_url="https://start.exactonline.be",
        headers=ACCEPT_JSON,
    ) as client:
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        link = client.get(TT, params=params).json()["d"]["__next"]
    assert link.startswith(f"https://start.exactonline.be{TT}?")
    query = _query(link)
    assert {name: query[name] for name in params} == params
    assert "$skiptoken" in query


def test_skiptoken_is_the_last_key_as_a_guid_literal(api: httpx.Client) -> None:
    """Regular lists resume after guid'<last ID of the page>'."""
    body = api.get(TT, params={"$select": "ID"}).json()["d"]
    assert body["__next"].endswith(f"$skiptoken=guid'{body['results'][-1]['ID']}'")


def test_sync_skiptoken_is_the_last_timestamp(big: Sandbox) -> None:
    """Sync lists resume after <last Timestamp>L."""
    with client_for(big, big.issue_tokens()["access_token"]) as api:
        body = api.get(
            f"/api/v1/{DIVISION}/sync/Project/TimeCostTransactions", params={"$select": "Timestamp"}
        )
    page = body.json()["d"]
    assert page["__next"].endswith(f"$skiptoken={page['results'][-1]['Timestamp']}L")


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"$select": "ID"}, lambda r: True),
        ({"$select": "ID", "$filter": "HourStatus eq 20"}, lambda r: r["HourStatus"] == 20),
        ({"$select": "ID", "$orderby": "Date desc"}, lambda r: True),
        (
            {"$select": "ID", "$filter": "Quantity gt 2", "$orderby": "Quantity,Date"},
            lambda r: r["Quantity"] > 2,
        ),
    ],
    ids=["plain", "filter", "orderby", "filter+orderby"],
)
def test_paging_yields_every_matching_row_once(
    big: Sandbox, params: dict[str, str], keep: Any
) -> None:
    """Following __next to the end returns each matching record exactly once."""
    sync = f"/api/v1/{DIVISION}/sync/Project/TimeCostTransactions"
    with client_for(big, big.issue_tokens()["access_token"]) as api:
        ids = [row["ID"] for row in all_pages(api, TT, params)]
        everything = all_pages(api, sync, {"$select": "ID,HourStatus,Quantity"})
    assert len(ids) == len(set(ids))
    assert set(ids) == {r["ID"] for r in everything if keep(r)}


def test_top_larger_than_a_page_carries_the_rest_in_next(api: httpx.Client) -> None:
    """$top=100 gives 60 rows and a __next with $top=40, then 40 rows and no __next."""
    first = api.get(TT, params={"$top": "100", "$select": "ID"}).json()["d"]
    assert len(first["results"]) == 60 and _query(first["__next"])["$top"] == "40"
    second = api.get(first["__next"]).json()["d"]
    assert len(second["results"]) == 40 and "__next" not in second


def test_top_smaller_than_a_page_means_no_next(api: httpx.Client) -> None:
    """A $top under the page size never adds __next."""
    assert "__next" not in api.get(TT, params={"$top": "59"}).json()["d"]


def test_timestamp_filter_starts_the_sync_feed_where_asked(big: Sandbox) -> None:
    """Timestamp gt N returns exactly the rows after N, in Timestamp order."""
    url = f"/api/v1/{DIVISION}/sync/Project/TimeCostTransactions"
    with client_for(big, big.issue_tokens()["access_token"]) as api:
        stamps = [r["Timestamp"] for r in all_pages(api, url, {"$select": "Timestamp"})]
        cut = stamps[1234]
        after = [
            r["Timestamp"]
            for r in all_pages(
                api, url, {"$select": "Timestamp", "$filter": f"Timestamp gt {cut}L"}
            )
        ]
    assert after == stamps[1235:]


def test_a_malformed_skiptoken_is_400(api: httpx.Client) -> None:
    """The skiptoken must be a literal of the list's key type."""
    assert api.get(TT, params={"$skiptoken": "guid'zz'"}).status_code == 400
    assert api.get(TT, params={"$skiptoken": "12L"}).status_code == 400


def test_same_seed_same_first_page_byte_for_byte(clock: ManualClock) -> None:
    """Two sandboxes with one seed answer the first page with identical bytes."""
    pages = []
    for seed in (7, 7, 8):
        sandbox = Sandbox(seed=seed, clock=ManualClock(clock.now()))
        with client_for(sandbox, sandbox.issue_tokens()["access_token"]) as api:
            pages.append(api.get(TT).content)
    assert pages[0] == pages[1]
    assert pages[0] != pages[2]


def test_divisions_hold_different_data(api: httpx.Client) -> None:
    """Each division is seeded on its own."""
    first = api.get(TT, params={"$select": "ID", "$top": "5"}).json()["d"]["results"]
    other = api.get(
        "/api/v1/100002/project/TimeTransactions", params={"$select": "ID", "$top": "5"}
    )
    assert {r["ID"] for r in first}.isdisjoint(r["ID"] for r in other.json()["d"]["results"])


def test_a_hundred_thousand_rows_page_through(clock: ManualClock) -> None:
    """A 100,000-row table seeds lazily and pages from start to end without repeats."""
    sandbox = Sandbox(clock=clock, limits=False, rows_per_endpoint={"crm/Accounts": 100_000})
    with client_for(sandbox, sandbox.issue_tokens()["access_token"]) as api:
        rows = all_pages(api, f"/api/v1/{DIVISION}/sync/CRM/Accounts", {"$select": "Timestamp"})
    stamps = [r["Timestamp"] for r in rows]
    assert len(stamps) == 100_000 and stamps == sorted(set(stamps))
