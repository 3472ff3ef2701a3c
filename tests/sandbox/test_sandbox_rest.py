"""Generic CRUD over the catalog: methods, keys, validation, derived fields, shared twins."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sandbox_harness import DIVISION, all_pages, client_for, first_record, new_hours

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

TT = f"/api/v1/{DIVISION}/project/TimeTransactions"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PREFER = {"Prefer": "return=representation"}


# -- the special resources -----------------------------------------------------------------------


def test_me_has_no_division_and_no_rate_limit_headers(api: httpx.Client, sb: Sandbox) -> None:
    """current/Me lists one user in d.results, typed System.Me, with the current division."""
    answer = api.get("/api/v1/current/Me")
    me = answer.json()["d"]["results"][0]
    assert me["__metadata"]["type"] == "Exact.Web.Api.Models.System.Me"
    assert me["CurrentDivision"] == sb.current_division
    assert GUID.fullmatch(me["UserID"]) and GUID.fullmatch(me["EmployeeID"])
    assert {"UserName", "FullName", "Email", "DivisionCustomer", "DivisionCustomerName"} <= set(me)
    assert not any(name.lower().startswith("x-ratelimit") for name in answer.headers)


def test_me_select_current_division(api: httpx.Client, sb: Sandbox) -> None:
    """The KB's division probe: current/Me?$select=CurrentDivision."""
    me = api.get("/api/v1/current/Me", params={"$select": "CurrentDivision"}).json()["d"][
        "results"
    ][0]
    assert set(me) == {"__metadata", "CurrentDivision"}
    assert me["CurrentDivision"] == sb.current_division


def test_me_employee_is_a_real_employee(api: httpx.Client) -> None:
    """Me.EmployeeID points at a payroll/Employees record of the current division."""
    me = api.get("/api/v1/current/Me").json()["d"]["results"][0]
    employee = api.get(f"/api/v1/{DIVISION}/payroll/Employees(guid'{me['EmployeeID']}')")
    assert employee.status_code == 200


def test_divisions_lists_the_granted_divisions(sb: Sandbox) -> None:
    """system/Divisions lists what the token was granted; AllDivisions lists all."""
    tokens = sb.issue_tokens(divisions=[100002, 100003])
    with client_for(sb, tokens["access_token"]) as client:
        granted = client.get("/api/v1/100002/system/Divisions").json()["d"]["results"]
        everything = client.get("/api/v1/100002/system/AllDivisions").json()["d"]["results"]
    assert [d["Code"] for d in granted] == [100002, 100003]
    assert [d["Code"] for d in everything] == sb.divisions
    assert all(d["Description"] and d["Hid"] == d["Code"] for d in granted)
    assert granted[0]["__metadata"]["uri"].endswith("/system/Divisions(100002)")


# -- routing, methods, keys ----------------------------------------------------------------------


def test_unknown_endpoint_is_404(api: httpx.Client) -> None:
    """An endpoint not in the catalog answers 404 with Exact's error envelope."""
    answer = api.get(f"/api/v1/{DIVISION}/crm/Nonsense")
    assert answer.status_code == 404
    assert (
        answer.json()["error"]["message"]["value"]
        == "Resource not found for the segment 'Nonsense'."
    )


def test_methods_come_from_the_catalog(api: httpx.Client) -> None:
    """payroll/Employees is GET-only: POST answers 405 with an Allow header."""
    answer = api.post(f"/api/v1/{DIVISION}/payroll/Employees", json={"Code": "9"})
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"


def test_delete_on_a_collection_is_405(api: httpx.Client) -> None:
    """DELETE needs a key."""
    assert api.delete(TT).status_code == 405


def test_get_by_guid_key(api: httpx.Client) -> None:
    """Endpoint(guid'…') answers {"d": record}."""
    key = first_record(api, "project/TimeTransactions")["ID"]
    answer = api.get(f"{TT}(guid'{key}')")
    assert answer.status_code == 200
    assert answer.json()["d"]["ID"] == key
    assert answer.json()["d"]["__metadata"]["uri"].endswith(f"TimeTransactions(guid'{key}')")


def test_get_by_integer_key(api: httpx.Client) -> None:
    """Integer keys are bare numbers: system/Divisions(100001)."""
    answer = api.get(f"/api/v1/{DIVISION}/system/Divisions({DIVISION})")
    assert answer.json()["d"]["Code"] == DIVISION


def test_get_by_string_key(api: httpx.Client) -> None:
    """String keys are quoted: general/Currencies('K00001')."""
    code = first_record(api, "general/Currencies", "Code")["Code"]
    answer = api.get(f"/api/v1/{DIVISION}/general/Currencies('{code}')")
    assert answer.status_code == 200
    assert answer.json()["d"]["Code"] == code


def test_get_a_missing_key_is_404(api: httpx.Client) -> None:
    """A well-formed key with no record answers 404."""
    answer = api.get(f"{TT}(guid'00000000-0000-0000-0000-000000000000')")
    assert answer.status_code == 404


@pytest.mark.parametrize(
    "literal",
    ["guid'nope'", "'abc'", "12", "guid'1234'", "guid'00000000-0000-0000-0000-000000000000"],
)
def test_malformed_key_literals_are_400(api: httpx.Client, literal: str) -> None:
    """A key literal of the wrong shape for the key type answers 400."""
    answer = api.get(f"{TT}({literal})")
    assert answer.status_code == 400
    assert "literal" in answer.json()["error"]["message"]["value"]


def test_sync_records_are_addressed_by_timestamp(api: httpx.Client) -> None:
    """A sync endpoint's key is its Timestamp (Int64, written 123L)."""
    row = api.get(
        f"/api/v1/{DIVISION}/sync/Project/TimeCostTransactions",
        params={"$select": "Timestamp,ID", "$top": "1"},
    ).json()["d"]["results"][0]
    assert row["__metadata"]["uri"].endswith(f"TimeCostTransactions({row['Timestamp']}L)")
    again = api.get(f"/api/v1/{DIVISION}/sync/Project/TimeCostTransactions({row['Timestamp']}L)")
    assert again.json()["d"]["ID"] == row["ID"]


# -- POST ----------------------------------------------------------------------------------------


def test_post_with_representation_returns_the_whole_record(
    api: httpx.Client, sb: Sandbox, clock: ManualClock
) -> None:
    """201 with key, read-only derived fields from the linked records, and audit fields."""
    body = new_hours(api, Notes="Sandbox test")
    answer = api.post(TT, json=body, headers=PREFER)
    assert answer.status_code == 201
    record = answer.json()["d"]
    project = api.get(f"/api/v1/{DIVISION}/project/Projects(guid'{body['Project']}')").json()["d"]
    item = api.get(f"/api/v1/{DIVISION}/logistics/Items(guid'{body['Item']}')").json()["d"]
    account = api.get(f"/api/v1/{DIVISION}/crm/Accounts(guid'{project['Account']}')").json()["d"]
    assert GUID.fullmatch(record["ID"])
    assert record["ProjectCode"] == project["Code"]
    assert record["ProjectDescription"] == project["Description"]
    assert record["ItemDescription"] == item["Description"]
    assert record["Account"] == project["Account"]
    assert record["AccountName"] == account["Name"]
    assert record["AmountFC"] == round(2.5 * item["StandardSalesPrice"], 2)
    assert record["Division"] == DIVISION
    assert record["Type"] == 1 and record["HourStatus"] == 1
    assert record["Created"] == f"/Date({int(clock.now() * 1000)})/"
    assert record["Creator"] == api.get("/api/v1/current/Me").json()["d"]["results"][0]["UserID"]
    assert answer.headers["location"] == record["__metadata"]["uri"]
    assert sb.counters.records_created["project/TimeTransactions"] == 1
    assert sb.count(DIVISION, "project/TimeTransactions") == 151


def test_post_without_prefer_fills_only_the_key(api: httpx.Client) -> None:
    """Without Prefer: return=representation every property but the key is null."""
    answer = api.post(TT, json=new_hours(api))
    record = answer.json()["d"]
    assert answer.status_code == 201
    assert GUID.fullmatch(record["ID"])
    assert {k for k, v in record.items() if v is not None} == {"__metadata", "ID"}
    assert api.get(f"{TT}(guid'{record['ID']}')").json()["d"]["Quantity"] == 2.5


@pytest.mark.parametrize("missing", ["Project", "Item", "Quantity"])
def test_post_requires_the_mandatory_fields(api: httpx.Client, missing: str) -> None:
    """Item, Project and Quantity are mandatory on project/TimeTransactions."""
    body = new_hours(api)
    del body[missing]
    answer = api.post(TT, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"]["value"] == f"Field '{missing}' is mandatory."


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"ProjectCode": "X"}, "Property 'ProjectCode' is read-only."),
        ({"ID": "0b9b7a47-91a6-4b7e-8a4b-7b4f6a5c3d2e"}, "Property 'ID' is read-only"),
        (
            {"Bogus": 1},
            "The property 'Bogus' does not exist on type 'Exact.Web.Api.Models.TimeTransaction'.",
        ),
        ({"project": "x"}, "The property 'project' does not exist"),
        ({"Quantity": "two"}, "The value of property 'Quantity' is not a valid Edm.Double."),
        ({"Quantity": True}, "The value of property 'Quantity' is not a valid Edm.Double."),
        ({"HourStatus": 70000}, "The value of property 'HourStatus' is not a valid Edm.Int16."),
        ({"Date": "yesterday"}, "The value of property 'Date' is not a valid Edm.DateTime."),
        ({"Employee": "not-a-guid"}, "The value of property 'Employee' is not a valid Edm.Guid."),
        ({"Notes": 5}, "The value of property 'Notes' is not a valid Edm.String."),
    ],
    ids=lambda v: str(v)[:30],
)
def test_post_refuses_bad_properties(
    api: httpx.Client, extra: dict[str, Any], fragment: str
) -> None:
    """Read-only, unknown and mistyped properties answer 400 with an Exact-style message."""
    answer = api.post(TT, json=new_hours(api, **extra))
    assert answer.status_code == 400
    assert fragment in answer.json()["error"]["message"]["value"]


@pytest.mark.parametrize("status", [0, 11, 20, 3], ids=["zero", "read-only-11", "final-20", "3"])
def test_hour_status_takes_only_draft_rejected_or_submitted(api: httpx.Client, status: int) -> None:
    """API-FACTS §5: HourStatus on POST/PUT is 1, 2 or 10; 20 (Final) and the rest are refused."""
    answer = api.post(TT, json=new_hours(api, HourStatus=status))
    assert answer.status_code == 400
    assert answer.json()["error"]["message"]["value"] == (
        "Property 'HourStatus' must be one of 1 (Draft), 2 (Rejected), 10 (Submitted)."
    )


@pytest.mark.parametrize("status", [1, 2, 10])
def test_hour_status_1_2_and_10_are_written(api: httpx.Client, status: int) -> None:
    """The three writable statuses create and update."""
    created = api.post(
        TT, json=new_hours(api, HourStatus=status), headers={"Prefer": "return=representation"}
    )
    assert created.status_code == 201 and created.json()["d"]["HourStatus"] == status
    key = f"{TT}(guid'{created.json()['d']['ID']}')"
    assert api.put(key, json={"HourStatus": 20}).status_code == 400
    assert api.put(key, json={"HourStatus": 10}).status_code == 204


def test_the_server_keeps_timestamp(api: httpx.Client) -> None:
    """Timestamp is the server's row version: writing it is refused even where it is listed."""
    answer = api.post(f"/api/v1/{DIVISION}/crm/Accounts", json={"Name": "X B.V.", "Timestamp": 5})
    assert answer.json()["error"]["message"]["value"] == "Property 'Timestamp' is read-only."


def test_post_refuses_a_reference_to_nothing(api: httpx.Client) -> None:
    """A Project GUID that names no project is refused."""
    body = new_hours(api, Project="0b9b7a47-91a6-4b7e-8a4b-7b4f6a5c3d2e")
    answer = api.post(TT, json=body)
    assert answer.status_code == 400
    assert "Project" in answer.json()["error"]["message"]["value"]


@pytest.mark.parametrize(
    "body", [b"[]", b"{", b"", b'"text"'], ids=["array", "broken", "empty", "string"]
)
def test_post_needs_a_json_object(api: httpx.Client, body: bytes) -> None:
    """Anything but a JSON object is Exact's "valid top-level resource object" error."""
    answer = api.post(TT, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "valid top-level resource object" in answer.json()["error"]["message"]["value"]


def test_dates_are_accepted_as_iso_or_exact_form(api: httpx.Client) -> None:
    """ISO 8601 and /Date(ms)/ both write the same date."""
    first = api.post(TT, json=new_hours(api, Date="2025-03-04T00:00:00"), headers=PREFER).json()[
        "d"
    ]
    second = api.post(TT, json=new_hours(api, Date="/Date(1741046400000)/"), headers=PREFER).json()[
        "d"
    ]
    assert first["Date"] == second["Date"] == "/Date(1741046400000)/"


def test_account_codes_are_right_aligned_in_18_characters(api: httpx.Client) -> None:
    """A written or assigned crm/Accounts Code is padded with leading spaces to 18."""
    given = api.post(
        f"/api/v1/{DIVISION}/crm/Accounts",
        json={"Name": "Nieuw B.V.", "Code": "777"},
        headers=PREFER,
    )
    assigned = api.post(
        f"/api/v1/{DIVISION}/crm/Accounts", json={"Name": "Ander B.V."}, headers=PREFER
    )
    assert given.json()["d"]["Code"] == " " * 15 + "777"
    code = assigned.json()["d"]["Code"]
    assert len(code) == 18 and code.strip().isdigit() and code.startswith(" ")


# -- PUT and DELETE ------------------------------------------------------------------------------


def test_put_answers_204_and_changes_the_record(api: httpx.Client, clock: ManualClock) -> None:
    """PUT writes only the given fields, bumps Modified, and answers an empty 204."""
    key = first_record(api, "project/TimeTransactions")["ID"]
    before = api.get(f"{TT}(guid'{key}')").json()["d"]
    clock.advance(10)
    answer = api.put(f"{TT}(guid'{key}')", json={"Quantity": 7.25, "Notes": "changed"})
    assert answer.status_code == 204
    assert answer.content == b""
    after = api.get(f"{TT}(guid'{key}')").json()["d"]
    assert (after["Quantity"], after["Notes"]) == (7.25, "changed")
    assert after["Project"] == before["Project"] and after["Created"] == before["Created"]
    assert after["Modified"] == f"/Date({int(clock.now() * 1000)})/"


def test_put_to_a_missing_key_is_404(api: httpx.Client) -> None:
    """PUT never creates."""
    answer = api.put(f"{TT}(guid'00000000-0000-0000-0000-000000000001')", json={"Quantity": 1})
    assert answer.status_code == 404


def test_put_refuses_read_only_fields_and_nulling_mandatory_ones(api: httpx.Client) -> None:
    """A PUT is checked like a POST, without requiring absent mandatory fields."""
    key = first_record(api, "project/TimeTransactions")["ID"]
    assert api.put(f"{TT}(guid'{key}')", json={"ItemDescription": "x"}).status_code == 400
    nulled = api.put(f"{TT}(guid'{key}')", json={"Quantity": None})
    assert nulled.json()["error"]["message"]["value"] == "Field 'Quantity' is mandatory."


def test_put_cannot_change_the_key(api: httpx.Client) -> None:
    """A body ID other than the URL's is refused."""
    key = first_record(api, "project/TimeTransactions")["ID"]
    answer = api.put(f"{TT}(guid'{key}')", json={"ID": "00000000-0000-0000-0000-000000000001"})
    assert answer.status_code == 400


def test_delete_answers_204_then_the_record_is_gone(api: httpx.Client, sb: Sandbox) -> None:
    """DELETE removes the record (and a second DELETE is 404); sync/Deleted records it."""
    key = first_record(api, "project/TimeTransactions")["ID"]
    answer = api.delete(f"{TT}(guid'{key}')")
    assert (answer.status_code, answer.content) == (204, b"")
    assert api.get(f"{TT}(guid'{key}')").status_code == 404
    assert api.delete(f"{TT}(guid'{key}')").status_code == 404
    assert sb.count(DIVISION, "project/TimeTransactions") == 149
    deleted = api.get(f"/api/v1/{DIVISION}/sync/Deleted", params={"$select": "EntityKey,Timestamp"})
    assert [row["EntityKey"] for row in deleted.json()["d"]["results"]] == [key]


# -- twins ----------------------------------------------------------------------------------------


def test_bulk_and_sync_twins_share_the_regular_store(api: httpx.Client) -> None:
    """A new account appears in bulk/CRM/Accounts and, last, in sync/CRM/Accounts."""
    created = api.post(
        f"/api/v1/{DIVISION}/crm/Accounts", json={"Name": "Twin B.V."}, headers=PREFER
    ).json()["d"]
    bulk = all_pages(api, f"/api/v1/{DIVISION}/bulk/CRM/Accounts", {"$select": "ID,Name"})
    sync = all_pages(api, f"/api/v1/{DIVISION}/sync/CRM/Accounts", {"$select": "ID,Timestamp"})
    regular = all_pages(api, f"/api/v1/{DIVISION}/crm/Accounts", {"$select": "ID"})
    assert {r["ID"] for r in bulk} == {r["ID"] for r in sync} == {r["ID"] for r in regular}
    assert len(bulk) == 151
    assert sync[-1]["ID"] == created["ID"]
    stamps = [row["Timestamp"] for row in sync]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_an_update_moves_the_row_to_the_end_of_the_sync_feed(api: httpx.Client) -> None:
    """Sync clients see changed rows again: the Timestamp grows past every other."""
    sync = f"/api/v1/{DIVISION}/sync/Project/TimeCostTransactions"
    first = api.get(sync, params={"$select": "ID,Timestamp", "$top": "1"}).json()["d"]["results"][0]
    api.put(f"{TT}(guid'{first['ID']}')", json={"Notes": "moved"})
    changed = api.get(
        sync,
        params={"$select": "ID,Notes,Timestamp", "$filter": f"Timestamp gt {first['Timestamp']}L"},
    )
    rows = changed.json()["d"]["results"]
    assert rows[-1]["ID"] == first["ID"] and rows[-1]["Notes"] == "moved"
    assert rows[-1]["Timestamp"] > first["Timestamp"]


def test_collections_are_deferred_and_can_be_expanded(api: httpx.Client) -> None:
    """Navigation properties appear as __deferred links; $expand and the navigation segment
    list the account's records of crm/BankAccounts (those whose Account is its ID)."""
    plain = api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"}).json()["d"][
        "results"
    ][0]
    uri = plain["__metadata"]["uri"]
    assert plain["BankAccounts"] == {"__deferred": {"uri": f"{uri}/BankAccounts"}}
    expanded = api.get(
        f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1", "$expand": "BankAccounts"}
    ).json()["d"]["results"][0]["BankAccounts"]["results"]
    theirs = all_pages(
        api,
        f"/api/v1/{DIVISION}/crm/BankAccounts",
        {"$filter": f"Account eq guid'{plain['ID']}'"},
    )
    assert [line["ID"] for line in expanded] == [line["ID"] for line in theirs] != []
    followed = api.get(f"{uri.split('/api/v1', 1)[1].join(['/api/v1', ''])}/BankAccounts")
    assert followed.json() == {"d": {"results": expanded}}


def test_a_collection_without_a_table_of_its_own_expands_empty(api: httpx.Client) -> None:
    """project/Projects' BudgetedHoursPerHourType names no endpoint: {"results": []}."""
    expanded = api.get(
        f"/api/v1/{DIVISION}/project/Projects",
        params={"$top": "1", "$expand": "BudgetedHoursPerHourType"},
    )
    assert expanded.json()["d"]["results"][0]["BudgetedHoursPerHourType"] == {"results": []}


def test_count_segment_answers_a_bare_number(api: httpx.Client) -> None:
    """Endpoint/$count returns the (filtered) number of records as text, to a request without
    an Accept header (API-FACTS §4: "$count … returns a bare integer, send no Accept header")."""
    url = f"/api/v1/{DIVISION}/logistics/Items/$count"
    del api.headers["Accept"]
    answer = api.get(url, params={"$filter": "IsTime eq 1"})
    assert (answer.status_code, answer.headers["content-type"], answer.text) == (
        200,
        "text/plain",
        "6",
    )


def test_count_segment_refuses_an_accept_of_json_only(api: httpx.Client) -> None:
    """Accept: application/json cannot be met by a bare number: 415, as the facts warn."""
    answer = api.get(f"/api/v1/{DIVISION}/logistics/Items/$count")
    assert answer.status_code == 415


#: The parameters of the function endpoints the sandbox computes (the others list their table).
FUNCTION_ARGUMENTS = {
    "users/UserHasRights": {"endpoint": "'crm/Accounts'", "action": "'GET'"},
    "read/project/HoursByDate": {"checkDate": "datetime'2025-11-30'"},
}


def test_every_catalog_endpoint_answers(clock: ManualClock) -> None:
    """All 455 endpoints: GET-able ones list records with __metadata, the others answer 405."""
    from exact_connector.catalog import catalog

    sandbox = Sandbox(clock=clock, limits=False, rows=3)
    statuses: dict[int, int] = {}
    with client_for(sandbox, sandbox.issue_tokens()["access_token"]) as client:
        for endpoint in catalog():
            arguments = FUNCTION_ARGUMENTS.get(endpoint.id, {})
            answer = client.get(
                endpoint.path.replace("{division}", str(DIVISION)),
                params={"$top": "1", **arguments},
            )
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if endpoint.supports("GET"):
                assert answer.status_code == 200, (endpoint.id, answer.text)
                body = answer.json()["d"]
                records = body.get("results", []) if "UserHasRights" not in body else []
                assert all("__metadata" in record for record in records)
            else:
                assert answer.status_code == 405, endpoint.id
    assert sum(statuses.values()) == len(catalog()) == 455
