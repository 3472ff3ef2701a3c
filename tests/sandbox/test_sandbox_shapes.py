"""The sandbox's answers have the structure of real recorded Exact answers (tests/sandbox/recorded)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sandbox_harness import DIVISION, client_for, recorded, refresh_call

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

DATE = re.compile(r"/Date\(-?\d+\)/")
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _shape(value: Any) -> str:
    """What kind of JSON value this is, in Exact's terms."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "date" if DATE.fullmatch(value) else "string"
    if isinstance(value, dict) and set(value) == {"__deferred"}:
        return "deferred"
    if isinstance(value, dict) and set(value) == {"uri", "type"}:
        return "metadata"
    return type(value).__name__


def _same_shapes(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Fields both records fill whose kind of value differs."""
    return [
        name
        for name in set(ours) & set(theirs)
        if None not in (ours[name], theirs[name]) and _shape(ours[name]) != _shape(theirs[name])
    ]


def test_account_list_page_has_the_recorded_envelope_and_record_shape(api: httpx.Client) -> None:
    """{"d":{"results":[…]}}; __metadata {uri,type}; deferred BankAccounts; dates; 18-char Code."""
    theirs = recorded("get_crm_accounts_list.json")
    ours = api.get(f"/api/v1/{DIVISION}/crm/Accounts").json()
    assert set(ours) == set(theirs) == {"d"}
    assert set(theirs["d"]) <= set(ours["d"]) <= {"results", "__next", "__count"}
    mine, real = ours["d"]["results"][0], theirs["d"]["results"][0]
    assert _shape(mine["__metadata"]) == _shape(real["__metadata"]) == "metadata"
    assert (
        mine["__metadata"]["type"] == real["__metadata"]["type"] == "Exact.Web.Api.Models.Account"
    )
    pattern = rf"https://start\.exactonline\.nl/api/v1/\d+/crm/Accounts\(guid'{GUID}'\)"
    assert re.fullmatch(pattern, mine["__metadata"]["uri"]) and re.fullmatch(
        pattern, real["__metadata"]["uri"]
    )
    assert mine["BankAccounts"] == {
        "__deferred": {"uri": mine["__metadata"]["uri"] + "/BankAccounts"}
    }
    assert _shape(real["BankAccounts"]) == "deferred"
    assert _same_shapes(mine, real) == []
    shared = set(mine) & set(real)
    assert len(shared) > 80, "the catalog's account fields cover the recorded ones"
    for name in ("Created", "Modified", "StartDate"):
        assert _shape(mine[name]) == _shape(real[name]) == "date"
    for record in (mine, real):
        assert len(record["Code"]) == 18 and re.fullmatch(r" +\d+", record["Code"])


def test_single_account_has_the_recorded_object_form(api: httpx.Client) -> None:
    """GET by key answers {"d":{…}} like the recorded single object."""
    theirs = recorded("crm_account_single_object.json")
    key = api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"}).json()["d"]["results"][
        0
    ]["ID"]
    ours = api.get(f"/api/v1/{DIVISION}/crm/Accounts(guid'{key}')").json()
    assert set(ours) == set(theirs) == {"d"}
    assert "results" not in ours["d"] and "results" not in theirs["d"]
    assert _same_shapes(ours["d"], theirs["d"]) == []


def test_next_link_has_the_recorded_form(api: httpx.Client) -> None:
    """An absolute URL ending in ?$skiptoken=guid'…', as in the recorded GLAccounts page."""
    theirs = recorded("get_financial_glaccounts_page_with_next.json")["d"]["__next"]
    ours = api.get(f"/api/v1/{DIVISION}/financial/GLAccounts").json()["d"]["__next"]
    pattern = (
        rf"https://start\.exactonline\.nl/api/v1/\d+/financial/GLAccounts\?\$skiptoken=guid'{GUID}'"
    )
    assert re.fullmatch(pattern, theirs)
    assert re.fullmatch(pattern, ours)


def test_me_has_the_recorded_shape(api: httpx.Client) -> None:
    """current/Me?$select=CurrentDivision,UserID matches the recorded answer's structure."""
    theirs = recorded("me_currentdivision_hydration_test.json")["body"]
    ours = api.get("/api/v1/current/Me", params={"$select": "CurrentDivision,UserID"}).json()
    mine, real = ours["d"]["results"][0], theirs["d"]["results"][0]
    assert set(mine) == set(real)
    assert mine["__metadata"]["type"] == real["__metadata"]["type"]
    pattern = rf"https://start\.exactonline\.nl/api/v1/current/Me\(guid'{GUID}'\)"
    assert re.fullmatch(pattern, mine["__metadata"]["uri"]) and re.fullmatch(
        pattern, real["__metadata"]["uri"]
    )
    assert _same_shapes(mine, real) == []


def test_token_answer_has_the_recorded_shape(sb: Sandbox) -> None:
    """Same keys as Exact's KB example; expires_in the string "600"."""
    theirs = recorded("oauth_token_success_kb_example.json")["body"]
    ours = sb.issue_tokens()
    assert set(ours) == set(theirs)
    assert ours["expires_in"] == theirs["expires_in"] == "600"
    assert ours["token_type"].lower() == theirs["token_type"].lower()
    assert "!" in ours["refresh_token"] and "!" in theirs["refresh_token"]


def test_token_errors_match_the_recorded_ones(sb: Sandbox, clock: ManualClock) -> None:
    """Too-early (status, body, Reason header) and expired-refresh answers as recorded."""
    cases = {case["case"]: case for case in recorded("oauth_token_errors_observed.json")}
    too_early = next(
        case for name, case in cases.items() if name.startswith("refresh requested before")
    )
    expired = next(case for name, case in cases.items() if name.startswith("refresh token older"))
    tokens = sb.issue_tokens()
    with client_for(sb) as client:
        early = refresh_call(client, sb, tokens["refresh_token"])
        clock.advance(31 * 86_400)
        late = refresh_call(client, sb, tokens["refresh_token"])
    assert early.status_code == too_early["status"]
    assert early.json() == too_early["body"]
    assert early.headers["reason"] == too_early["headers"]["Reason"]
    assert late.status_code == expired["status"]
    assert (
        set(late.json()) == set(expired["body"])
        and late.json()["error"] == expired["body"]["error"]
    )
    message = (
        r"The refresh token expired at [\d/]+ [\d:]+ [AP]M and it is now [\d/]+ [\d:]+ [AP]M\."
    )
    assert re.fullmatch(message, late.json()["error_description"])
    assert re.fullmatch(message, expired["body"]["error_description"])


def _structure(value: Any) -> Any:
    return (
        {key: _structure(item) for key, item in value.items()} if isinstance(value, dict) else None
    )


def test_api_errors_have_the_recorded_envelope(api: httpx.Client) -> None:
    """{"error":{"code":"","message":{"lang":…,"value":…}}} as recorded; query errors as picqer saw."""
    theirs = recorded("api_errors_observed.json")
    guid_error = next(case for case in theirs if case["case"].startswith("malformed guid"))
    ours = api.get(f"/api/v1/{DIVISION}/crm/Accounts(guid'dsadsds')")
    assert ours.status_code == guid_error["status"]
    assert _structure(ours.json()) == _structure(guid_error["body"])
    assert ours.json()["error"]["code"] == ""
    assert ours.json()["error"]["message"]["value"].startswith(
        "Unrecognized 'Edm.Guid' literal 'guid'dsadsds''"
    )
    syntax = next(case for case in theirs if case["case"].startswith("OData syntax error"))
    broken = api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$filter": "Name eq"})
    assert (
        f"{broken.status_code} {broken.reason_phrase}"
        == f"{syntax['status']} {syntax['reason_phrase']}"
    )
    select = next(case for case in theirs if case["case"] == "query needs narrowing")
    bulk = api.get(f"/api/v1/{DIVISION}/bulk/CRM/Accounts")
    assert (bulk.status_code, bulk.json()["error"]["message"]["value"]) == (
        select["status"],
        select["message_value"],
    )
    reasons = next(case for case in theirs if case["case"] == "403 with Reason header")[
        "reason_header_values"
    ]
    assert api.get("/api/v1/999999/crm/Accounts").headers["reason"] in reasons


def test_rate_limit_headers_have_the_recorded_form(api: httpx.Client) -> None:
    """The six headers, 13-digit millisecond resets on a minute and on UTC midnight."""
    theirs = recorded("ratelimit_headers_observed.json")
    real = {
        name.lower(): value
        for name, value in theirs["normal_response_headers"].items()
        if name.startswith("X-RateLimit")
    }
    ours = {
        name: value
        for name, value in api.get(
            f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"}
        ).headers.items()
        if name.startswith("x-ratelimit")
    }
    assert set(ours) == set(real)
    for headers in (ours, real):
        assert all(value.isdigit() for value in headers.values())
        assert len(headers["x-ratelimit-reset"]) == len(headers["x-ratelimit-minutely-reset"]) == 13
        assert int(headers["x-ratelimit-minutely-reset"]) % 60_000 == 0
        assert int(headers["x-ratelimit-reset"]) % 86_400_000 == 0
        assert (headers["x-ratelimit-limit"], headers["x-ratelimit-minutely-limit"]) == (
            "5000",
            "60",
        )
    for _ in range(59):
        api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"})
    refused = api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"})
    on_429 = theirs["values_seen_around_a_429"]["on_429"]
    assert refused.status_code == 429
    assert on_429["dailyLimit"] == 0 and "x-ratelimit-limit" not in refused.headers
    assert refused.headers["x-ratelimit-minutely-remaining"] == str(
        on_429["minutelyLimitRemaining"]
    )


def test_fixed_width_fields_are_padded_as_recorded(api: httpx.Client) -> None:
    """Country "NL " and Language "NL        " on accounts, Unit on items: the widths of the
    recorded answers, trailing spaces kept."""
    real_account = recorded("crm_account_single_object.json")["d"]
    real_item = recorded("get_logistics_items_list.json")["d"]["results"][0]
    account = api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"}).json()["d"][
        "results"
    ][0]
    item = api.get(
        f"/api/v1/{DIVISION}/logistics/Items", params={"$top": "1", "$filter": "IsTime eq 1"}
    ).json()["d"]["results"][0]
    assert account["Country"] == real_account["Country"] == "NL "
    assert len(account["Language"]) == len(real_account["Language"]) == 10
    assert account["Language"].rstrip() == real_account["Language"].rstrip() == "NL"
    assert len(item["Unit"]) == len(real_item["Unit"]) == 8
    assert item["Unit"] == "uur     " and item["UnitDescription"] == "Uur"


def test_a_filter_on_a_padded_field_ignores_the_padding(api: httpx.Client) -> None:
    """Country eq 'NL' finds the 'NL ' accounts, as SQL Server compares char columns."""
    url = f"/api/v1/{DIVISION}/crm/Accounts"
    every = api.get(url, params={"$select": "ID", "$inlinecount": "allpages"}).json()["d"]
    dutch = api.get(
        url,
        params={"$select": "ID", "$inlinecount": "allpages", "$filter": "Country eq 'NL'"},
    ).json()["d"]
    assert dutch["__count"] == every["__count"] == "150"


def test_a_written_fixed_width_field_is_stored_padded(api: httpx.Client) -> None:
    """POST Country "BE": it reads back "BE " like every other account's country."""
    created = api.post(
        f"/api/v1/{DIVISION}/crm/Accounts",
        json={"Name": "Padding B.V.", "Country": "BE"},
        headers={"Prefer": "return=representation"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["d"]["Country"] == "BE "
    assert created.json()["d"]["CountryName"] == "Belgium"
