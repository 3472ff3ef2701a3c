"""OData query options: $filter, $select, $orderby, $top, $inlinecount, and their errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sandbox_harness import DIVISION, all_pages, client_for

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

ACCOUNTS = f"/api/v1/{DIVISION}/crm/Accounts"
TT = f"/api/v1/{DIVISION}/project/TimeTransactions"
PREFER = {"Prefer": "return=representation"}


def _everything(api: httpx.Client, url: str, select: str) -> list[dict[str, Any]]:
    return all_pages(api, url, {"$select": select})


def _matching(api: httpx.Client, url: str, select: str, expression: str) -> list[dict[str, Any]]:
    return all_pages(api, url, {"$select": select, "$filter": expression})


def _ids(rows: list[dict[str, Any]]) -> set[str]:
    return {row["ID"] for row in rows}


# -- $filter -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "keep"),
    [
        ("Quantity eq 2.5", lambda r: r["Quantity"] == 2.5),
        ("Quantity ne 2.5", lambda r: r["Quantity"] != 2.5),
        ("Quantity gt 4", lambda r: r["Quantity"] > 4),
        ("Quantity ge 4", lambda r: r["Quantity"] >= 4),
        ("Quantity lt 1.5", lambda r: r["Quantity"] < 1.5),
        ("Quantity le 1.5M", lambda r: r["Quantity"] <= 1.5),
        (
            "HourStatus eq 20 and Quantity gt 3",
            lambda r: r["HourStatus"] == 20 and r["Quantity"] > 3,
        ),
        ("HourStatus eq 1 or HourStatus eq 10", lambda r: r["HourStatus"] in (1, 10)),
        ("not (HourStatus eq 20)", lambda r: r["HourStatus"] != 20),
        (
            "(HourStatus eq 1 or HourStatus eq 10) and not (Quantity lt 2)",
            lambda r: r["HourStatus"] in (1, 10) and r["Quantity"] >= 2,
        ),
        ("Date ge datetime'2025-10-01T00:00:00'", lambda r: r["Date"] >= "/Date(1759276800000)/"),
        ("substringof('review', Notes)", lambda r: "review" in r["Notes"].lower()),
        ("startswith(Notes, 'code')", lambda r: r["Notes"].lower().startswith("code")),
        ("endswith(ProjectCode, '7')", lambda r: r["ProjectCode"].endswith("7")),
        ("tolower(Notes) eq 'code review'", lambda r: r["Notes"] == "Code review"),
        ("Notes eq 'CODE REVIEW'", lambda r: r["Notes"] == "Code review"),
        ("Activity eq null", lambda r: True),
        ("Activity ne null", lambda r: False),
        ("ItemDivisable eq true", lambda r: True),
        ("ItemDivisable", lambda r: True),
    ],
)
def test_filters_select_exactly_the_matching_rows(
    api: httpx.Client, expression: str, keep: Any
) -> None:
    """Each filter returns exactly the rows a Python predicate over all rows keeps."""
    select = "ID,Quantity,HourStatus,Date,Notes,ProjectCode"
    everything = _everything(api, TT, select)
    expected = {row["ID"] for row in everything if keep(row)}
    assert _ids(_matching(api, TT, select, expression)) == expected


def test_date_comparisons_use_the_date_not_the_text(api: httpx.Client) -> None:
    """/Date(ms)/ strings compare as instants (checked against the parsed values)."""
    rows = _everything(api, TT, "ID,Date")
    cut = 1_759_276_800_000
    expected = {r["ID"] for r in rows if int(r["Date"][6:-2]) >= cut}
    assert _ids(_matching(api, TT, "ID", "Date ge datetime'2025-10-01'")) == expected


def test_guid_filters_find_the_record(api: httpx.Client) -> None:
    """ID eq guid'…' finds one record, in any letter case."""
    key = _everything(api, TT, "ID")[7]["ID"]
    assert _ids(_matching(api, TT, "ID", f"ID eq guid'{key.upper()}'")) == {key}
    project = api.get(f"{TT}(guid'{key}')").json()["d"]["Project"]
    same_project = _matching(api, TT, "ID,Project", f"Project eq guid'{project}'")
    assert same_project and all(r["Project"] == project for r in same_project)


def test_quotes_in_strings_are_doubled(api: httpx.Client) -> None:
    """'O''Brien' matches the text O'Brien and cannot break out of the literal."""
    created = api.post(ACCOUNTS, json={"Name": "O'Brien & Zn"}, headers=PREFER).json()["d"]
    found = _matching(api, ACCOUNTS, "ID,Name", "Name eq 'O''Brien & Zn'")
    assert _ids(found) == {created["ID"]}
    assert _matching(api, ACCOUNTS, "ID", "Name eq 'O'' or 1 eq 1 or ''x'") == []


def test_filters_read_derived_fields(api: httpx.Client) -> None:
    """Lookups (ProjectCode) filter like stored fields."""
    code = _everything(api, TT, "ProjectCode")[0]["ProjectCode"]
    rows = _matching(api, TT, "ProjectCode", f"ProjectCode eq '{code}'")
    assert rows and {r["ProjectCode"] for r in rows} == {code}


@pytest.mark.parametrize(
    "expression",
    [
        "Quantity eq",
        "Quantity eq 1 and",
        "(Quantity eq 1",
        "Quantity eq 1)",
        "Quantity",
        "Quantity eq 1 xor Quantity eq 2",
        "substringof('x')",
        "Notes eq 'unterminated",
        "Quantity eq 1 ;",
        "unknownfunc(Notes)",
    ],
)
def test_malformed_filters_answer_query_syntax_errors(api: httpx.Client, expression: str) -> None:
    """400 "Error in query syntax." with Exact's reason phrase."""
    answer = api.get(TT, params={"$filter": expression})
    assert answer.status_code == 400
    assert answer.reason_phrase == "Bad Request - Error in query syntax."
    assert answer.json()["error"]["message"]["value"] == "Error in query syntax."


@pytest.mark.parametrize(
    "expression", ["ID eq 'abc'", "Quantity eq 'two'", "Date gt 5", "Notes gt true"], ids=str
)
def test_operands_are_type_checked(api: httpx.Client, expression: str) -> None:
    """Comparing a field with a literal of another type is a 400, not an empty list."""
    assert api.get(TT, params={"$filter": expression}).status_code == 400


def test_unknown_fields_in_a_filter_are_refused(api: httpx.Client) -> None:
    """A property the endpoint does not have answers 400."""
    answer = api.get(TT, params={"$filter": "Nope eq 1"})
    assert answer.status_code == 400
    assert "Nope" in answer.json()["error"]["message"]["value"]


@pytest.mark.parametrize(
    "literal", ["guid'x'", "datetime'2025-13-45T00:00:00'", "datetime'tomorrow'"]
)
def test_malformed_literals_are_refused(api: httpx.Client, literal: str) -> None:
    """guid'…' and datetime'…' literals must be well formed."""
    answer = api.get(
        TT, params={"$filter": f"ID eq {literal}" if "guid" in literal else f"Date eq {literal}"}
    )
    assert answer.status_code == 400
    assert "literal" in answer.json()["error"]["message"]["value"]


# -- $select, $orderby, $top, $inlinecount ---------------------------------------------------------


def test_select_returns_only_the_chosen_fields(api: httpx.Client) -> None:
    """$select trims every record to __metadata plus the chosen fields."""
    rows = api.get(TT, params={"$select": "Quantity,ID"}).json()["d"]["results"]
    assert all(set(row) == {"__metadata", "ID", "Quantity"} for row in rows)


def test_select_of_an_unknown_field_is_400(api: httpx.Client) -> None:
    """Exact names the property and the type."""
    answer = api.get(TT, params={"$select": "ID,Nope"})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"]["value"] == (
        "No property 'Nope' exists in type 'Exact.Web.Api.Models.TimeTransaction'."
    )


@pytest.mark.parametrize(
    "endpoint", ["bulk/CRM/Accounts", "sync/CRM/Accounts", "sync/Project/TimeCostTransactions"]
)
def test_bulk_and_sync_require_select_or_top_1(api: httpx.Client, endpoint: str) -> None:
    """Without $select (or $top=1) bulk and sync answer Exact's troubleshooting message."""
    url = f"/api/v1/{DIVISION}/{endpoint}"
    refused = api.get(url)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"]["value"] == (
        "Please add a $select or a $top=1 statement to the query string."
    )
    assert api.get(url, params={"$top": "1"}).status_code == 200
    assert api.get(url, params={"$top": "2"}).status_code == 400


@pytest.mark.parametrize(
    "endpoint",
    ["expensemanagement/Expenses", "bulk/CRM/Accounts", "sync/CRM/Accounts"],
    ids=["regular-2017-or-later", "bulk", "sync"],
)
def test_skip_is_refused_on_endpoints_released_after_march_2017(
    api: httpx.Client, endpoint: str
) -> None:
    """API-FACTS §4: $skip is not supported on endpoints released after 1 March 2017."""
    answer = api.get(f"/api/v1/{DIVISION}/{endpoint}", params={"$skip": "60", "$select": "ID"})
    assert answer.status_code == 400
    assert "$skiptoken" in answer.json()["error"]["message"]["value"]


def test_skip_skips_rows_on_endpoints_released_before_march_2017(api: httpx.Client) -> None:
    """project/TimeTransactions is in Exact's 2016 SDK service list: $skip=60 starts where the
    second page starts, and its own __next drops $skip (the skiptoken is past those rows)."""
    first = api.get(TT, params={"$select": "ID"}).json()["d"]
    second = api.get(first["__next"]).json()["d"]
    skipped = api.get(TT, params={"$select": "ID", "$skip": "60"}).json()["d"]
    assert [r["ID"] for r in skipped["results"]] == [r["ID"] for r in second["results"]]
    assert "$skip=" not in skipped["__next"]


def test_skip_counts_after_filter_and_order(api: httpx.Client) -> None:
    """$skip passes over the first matching rows of the ordered list."""
    params = {"$select": "ID", "$filter": "Quantity ge 2", "$orderby": "Quantity desc"}
    every = all_pages(api, TT, params)
    skipped = all_pages(api, TT, {**params, "$skip": "5"})
    assert [r["ID"] for r in skipped] == [r["ID"] for r in every[5:]]


def test_skip_must_be_a_whole_number(api: httpx.Client) -> None:
    """$skip=-1 is a query syntax error."""
    assert api.get(TT, params={"$skip": "-1"}).status_code == 400


@pytest.mark.parametrize("option", ["$search", "$foo"])
def test_unknown_dollar_options_are_refused(api: httpx.Client, option: str) -> None:
    """A system-reserved $ option that OData v2 does not know answers 400."""
    assert api.get(TT, params={option: "x"}).status_code == 400


@pytest.mark.parametrize("top", ["-1", "x", "1.5", ""])
def test_top_must_be_a_whole_number(api: httpx.Client, top: str) -> None:
    """$top is a non-negative integer."""
    assert api.get(TT, params={"$top": top}).status_code == 400


def test_top_limits_the_result_and_zero_is_empty(api: httpx.Client) -> None:
    """$top=5 returns 5 rows and no __next; $top=0 returns none."""
    five = api.get(TT, params={"$top": "5"}).json()["d"]
    assert len(five["results"]) == 5 and "__next" not in five
    assert api.get(TT, params={"$top": "0"}).json()["d"]["results"] == []


def test_orderby_sorts_by_several_fields(api: httpx.Client) -> None:
    """$orderby=HourStatus desc,Quantity sorts like Python does, across pages."""
    rows = all_pages(
        api, TT, {"$select": "ID,HourStatus,Quantity", "$orderby": "HourStatus desc,Quantity asc"}
    )
    assert len(rows) == 150
    keys = [(-r["HourStatus"], r["Quantity"]) for r in rows]
    assert keys == sorted(keys)
    assert len({r["ID"] for r in rows}) == 150


def test_orderby_strings_ignore_case(api: httpx.Client) -> None:
    """Text sorts case-insensitively, like Exact's collation."""
    names = [r["Name"] for r in all_pages(api, ACCOUNTS, {"$select": "Name", "$orderby": "Name"})]
    assert names == sorted(names, key=str.casefold)


def test_orderby_an_unknown_field_is_400(api: httpx.Client) -> None:
    """$orderby names must exist."""
    assert api.get(TT, params={"$orderby": "Nope desc"}).status_code == 400
    assert api.get(TT, params={"$orderby": "Quantity sideways"}).status_code == 400


def test_inlinecount_counts_all_matching_rows(api: httpx.Client) -> None:
    """$inlinecount=allpages adds __count (a string) for the whole filtered list."""
    everything = _everything(api, TT, "ID,HourStatus")
    body = api.get(TT, params={"$filter": "HourStatus eq 20", "$inlinecount": "allpages"}).json()[
        "d"
    ]
    assert body["__count"] == str(sum(1 for r in everything if r["HourStatus"] == 20))
    assert next(iter(body)) == "__count"


def test_select_star_means_every_field(api: httpx.Client, sb: Sandbox) -> None:
    """$select=* is the whole record."""
    star = api.get(TT, params={"$select": "*", "$top": "1"}).json()["d"]["results"][0]
    plain = api.get(TT, params={"$top": "1"}).json()["d"]["results"][0]
    assert star == plain


# -- filters Exact demands or refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["Name eq 'x'", "Timestamp ge 5", "Timestamp gt 5 and Name eq 'x'", "5 lt Timestamp"],
    ids=["other-field", "other-operator", "combined", "mirrored"],
)
def test_sync_endpoints_take_only_a_timestamp_gt_filter(api: httpx.Client, expression: str) -> None:
    """API-FACTS "Sync feed": only Timestamp may be filtered, with gt."""
    answer = api.get(
        f"/api/v1/{DIVISION}/sync/CRM/Accounts",
        params={"$select": "ID", "$filter": expression},
    )
    assert answer.status_code == 400
    assert "Timestamp gt" in answer.json()["error"]["message"]["value"]


def test_a_sync_timestamp_gt_filter_is_accepted(api: httpx.Client) -> None:
    """Timestamp gt 1 (the first call of a feed) lists from the start."""
    answer = api.get(
        f"/api/v1/{DIVISION}/sync/CRM/Accounts",
        params={"$select": "ID", "$filter": "Timestamp gt 1L"},
    )
    assert answer.status_code == 200 and len(answer.json()["d"]["results"]) == 150


@pytest.fixture
def strict(clock: ManualClock) -> Sandbox:
    """A sandbox that enforces the mandatory $filter on endpoints with a sync API."""
    return Sandbox(seed=1, clock=clock, mandatory_filter=True)


@pytest.mark.parametrize("endpoint", ["crm/Accounts", "bulk/CRM/Accounts"], ids=["regular", "bulk"])
def test_with_the_switch_on_an_unfiltered_list_with_a_sync_api_is_refused(
    strict: Sandbox, endpoint: str
) -> None:
    """KB "API limits": a $filter is mandatory where a sync API exists (sync/CRM/Accounts)."""
    with client_for(strict, strict.issue_tokens()["access_token"]) as api:
        url = f"/api/v1/{DIVISION}/{endpoint}"
        refused = api.get(url, params={"$select": "ID"})
        filtered = api.get(url, params={"$select": "ID", "$filter": "Name ne ''"})
    assert refused.status_code == 400
    assert "$filter is mandatory" in refused.json()["error"]["message"]["value"]
    assert filtered.status_code == 200


@pytest.mark.parametrize(
    "endpoint",
    ["sync/CRM/Accounts", "project/TimeTransactions"],
    ids=["the-sync-api-itself", "no-sync-api"],
)
def test_with_the_switch_on_other_lists_need_no_filter(strict: Sandbox, endpoint: str) -> None:
    """A sync endpoint, and an endpoint without a sync twin, list unfiltered."""
    with client_for(strict, strict.issue_tokens()["access_token"]) as api:
        answer = api.get(f"/api/v1/{DIVISION}/{endpoint}", params={"$select": "ID"})
    assert answer.status_code == 200


def test_the_mandatory_filter_is_off_by_default(api: httpx.Client) -> None:
    """Which endpoints demand a filter is not in the catalog: by default none is refused."""
    assert api.get(f"/api/v1/{DIVISION}/crm/Accounts").status_code == 200
