"""Parents and their lines: $expand lists real, linked records, as Exact's recorded answer shows."""

from __future__ import annotations

from typing import Any

import httpx
from sandbox_harness import DIVISION, all_pages, recorded

from exact_connector.sandbox import Sandbox

INVOICES = f"/api/v1/{DIVISION}/salesinvoice/SalesInvoices"
LINES = f"/api/v1/{DIVISION}/salesinvoice/SalesInvoiceLines"


def _expanded(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = api.get(INVOICES, params={"$expand": "SalesInvoiceLines", **params})
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["d"]["results"]
    return results


def _new_invoice(api: httpx.Client, sb: Sandbox, lines: list[dict[str, Any]]) -> httpx.Response:
    account = sb.records(DIVISION, "crm/Accounts")[0]["ID"]
    return api.post(
        INVOICES,
        json={"OrderedBy": account, "Description": "Deep insert", "SalesInvoiceLines": lines},
        headers={"Prefer": "return=representation"},
    )


def test_expanded_lines_have_the_recorded_shape(api: httpx.Client) -> None:
    """Each invoice carries {"results":[lines]}; a line has the recorded type and fields and
    points back at its invoice (salesinvoice/SalesInvoices?$expand=SalesInvoiceLines)."""
    theirs = recorded("get_salesinvoices_with_expanded_lines.json")["d"]["results"][0]
    ours = _expanded(api, **{"$top": "1"})[0]
    assert set(ours["SalesInvoiceLines"]) == set(theirs["SalesInvoiceLines"]) == {"results"}
    mine, real = ours["SalesInvoiceLines"]["results"][0], theirs["SalesInvoiceLines"]["results"][0]
    assert mine["__metadata"]["type"] == real["__metadata"]["type"]
    assert mine["__metadata"]["uri"].startswith(f"https://start.exactonline.nl{LINES}(guid'")
    assert set(real) - set(mine) == set(), "every recorded line field is rendered"
    assert mine["InvoiceID"] == ours["InvoiceID"] and real["InvoiceID"] == theirs["InvoiceID"]


def test_every_seeded_invoice_has_its_lines(api: httpx.Client, sb: Sandbox) -> None:
    """Seeded lines belong to seeded invoices: each one lists exactly the lines pointing at it."""
    invoices = _expanded(api)
    by_invoice: dict[str, list[str]] = {}
    for line in sb.records(DIVISION, "salesinvoice/SalesInvoiceLines"):
        by_invoice.setdefault(line["InvoiceID"], []).append(line["ID"])
    for invoice in invoices:
        listed = [line["ID"] for line in invoice["SalesInvoiceLines"]["results"]]
        assert sorted(listed) == sorted(by_invoice.get(invoice["InvoiceID"], []))
        assert listed, "a seeded invoice has at least one line"


def test_a_line_written_through_its_own_endpoint_shows_in_the_expansion(
    api: httpx.Client,
) -> None:
    """POST a line for an invoice, then DELETE it: the parent's expansion follows both."""
    invoice = _expanded(api, **{"$top": "1"})[0]
    item = api.get(f"/api/v1/{DIVISION}/logistics/Items", params={"$top": "1"}).json()["d"][
        "results"
    ][0]["ID"]
    created = api.post(LINES, json={"InvoiceID": invoice["InvoiceID"], "Item": item})
    assert created.status_code == 201, created.text
    line = created.json()["d"]["ID"]
    key = f"(guid'{invoice['InvoiceID']}')"
    after = api.get(f"{INVOICES}{key}", params={"$expand": "SalesInvoiceLines"}).json()["d"]
    assert line in [x["ID"] for x in after["SalesInvoiceLines"]["results"]]
    assert api.delete(f"{LINES}(guid'{line}')").status_code == 204
    gone = api.get(f"{INVOICES}{key}/SalesInvoiceLines").json()["d"]["results"]
    assert line not in [x["ID"] for x in gone]


def test_a_post_with_lines_inline_creates_them_with_the_invoice(
    api: httpx.Client, sb: Sandbox
) -> None:
    """Exact's deep insert: the lines get the new invoice's key and their own IDs."""
    item = sb.records(DIVISION, "logistics/Items")[0]["ID"]
    lines = [{"Item": item, "Quantity": 2.0}, {"Item": item, "Quantity": 3.0}]
    created = _new_invoice(api, sb, lines)
    assert created.status_code == 201, created.text
    invoice = created.json()["d"]["InvoiceID"]
    stored = all_pages(api, LINES, {"$filter": f"InvoiceID eq guid'{invoice}'"})
    assert sorted(line["Quantity"] for line in stored) == [2.0, 3.0]


def test_a_bad_inline_line_creates_nothing(api: httpx.Client, sb: Sandbox) -> None:
    """A line missing its mandatory Item refuses the whole POST: no invoice, no line."""
    before = (
        sb.count(DIVISION, "salesinvoice/SalesInvoices"),
        sb.count(DIVISION, "salesinvoice/SalesInvoiceLines"),
    )
    refused = _new_invoice(api, sb, [{"Quantity": 2.0}])
    assert refused.status_code == 400
    assert refused.json()["error"]["message"]["value"] == "Field 'Item' is mandatory."
    after = (
        sb.count(DIVISION, "salesinvoice/SalesInvoices"),
        sb.count(DIVISION, "salesinvoice/SalesInvoiceLines"),
    )
    assert after == before


def test_deleting_an_invoice_deletes_its_lines(api: httpx.Client, sb: Sandbox) -> None:
    """Its lines and order-charge lines go with the invoice; sync/Deleted learns of each."""
    invoice = _expanded(
        api, **{"$top": "1", "$expand": "SalesInvoiceLines,SalesInvoiceOrderChargeLines"}
    )[0]
    owned = {
        endpoint: [line["ID"] for line in invoice[endpoint.rsplit("/", 1)[1]]["results"]]
        for endpoint in (
            "salesinvoice/SalesInvoiceLines",
            "salesinvoice/SalesInvoiceOrderChargeLines",
        )
    }
    assert all(owned.values())
    assert api.delete(f"{INVOICES}(guid'{invoice['InvoiceID']}')").status_code == 204
    for endpoint, keys in owned.items():
        assert [sb.record(DIVISION, endpoint, key) for key in keys] == [None] * len(keys)
    deleted = {record["EntityKey"] for record in sb.records(DIVISION, "sync/Deleted")}
    assert deleted == {invoice["InvoiceID"], *owned["salesinvoice/SalesInvoiceLines"]} | set(
        owned["salesinvoice/SalesInvoiceOrderChargeLines"]
    )


SYNC_INVOICES = f"/api/v1/{DIVISION}/sync/SalesInvoice/SalesInvoices"


def test_the_sync_feed_of_invoices_holds_a_row_per_line(api: httpx.Client, sb: Sandbox) -> None:
    """As Exact's does: each row is a line (its ID and LineNumber) with its invoice's fields,
    in strictly rising row versions, every page after the last version of the one before."""
    select = "Timestamp,InvoiceID,InvoiceNumber,ID,LineNumber"
    rows = all_pages(api, SYNC_INVOICES, {"$select": select, "$top": "200"})
    lines = sb.records(DIVISION, "salesinvoice/SalesInvoiceLines")

    assert sorted(row["ID"] for row in rows) == sorted(line["ID"] for line in lines)
    invoice_of = {line["ID"]: line["InvoiceID"] for line in lines}
    assert all(row["InvoiceID"] == invoice_of[row["ID"]] for row in rows)
    versions = [int(row["Timestamp"]) for row in rows]
    assert versions == sorted(set(versions))
    later = api.get(
        SYNC_INVOICES, params={"$select": select, "$filter": f"Timestamp gt {versions[9]}L"}
    )
    assert [row["ID"] for row in later.json()["d"]["results"]] == [row["ID"] for row in rows[10:]]


def test_a_new_invoice_adds_one_sync_row_per_line_and_one_without_lines_none(
    api: httpx.Client, sb: Sandbox
) -> None:
    """A deep insert of three lines is three rows, after every row before; an invoice with no
    lines has no row (Exact's feed is of lines)."""
    item = sb.records(DIVISION, "logistics/Items")[0]["ID"]
    select = {"$select": "Timestamp,InvoiceID,ID,LineNumber"}
    before = all_pages(api, SYNC_INVOICES, select)
    created = _new_invoice(api, sb, [{"Item": item, "Quantity": n} for n in (1, 2, 3)])
    empty = _new_invoice(api, sb, [])
    assert created.status_code == empty.status_code == 201

    after = all_pages(api, SYNC_INVOICES, select)

    added = after[len(before) :]
    invoice = created.json()["d"]["InvoiceID"]
    assert [row["InvoiceID"] for row in added] == [invoice] * 3
    assert len({row["ID"] for row in added}) == 3
    assert empty.json()["d"]["InvoiceID"] not in {row["InvoiceID"] for row in after}
