"""Documents and their lines in the sync feeds that hold a row per line (invoices, orders,
quotations): a write to a line saves its document, as Exact's does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sandbox_harness import DIVISION, all_pages, client_for

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

API = f"/api/v1/{DIVISION}"


@dataclass(frozen=True)
class Document:
    """A document endpoint, one of its line endpoints, its sync twin and the key they share."""

    endpoint: str
    lines: str
    sync: str
    key: str
    change: dict[str, Any]


INVOICE = Document(
    "salesinvoice/SalesInvoices",
    "salesinvoice/SalesInvoiceLines",
    "sync/SalesInvoice/SalesInvoices",
    "InvoiceID",
    {"Description": "Changed"},
)
DOCUMENTS = [
    pytest.param(INVOICE, id="invoice line"),
    pytest.param(
        Document(
            "salesinvoice/SalesInvoices",
            "salesinvoice/SalesInvoiceOrderChargeLines",
            "sync/SalesInvoice/SalesInvoices",
            "InvoiceID",
            {"OrderChargesLineDescription": "Changed"},
        ),
        id="invoice order-charge line",
    ),
    pytest.param(
        Document(
            "salesorder/SalesOrders",
            "salesorder/SalesOrderLines",
            "sync/SalesOrder/SalesOrders",
            "OrderID",
            {"Description": "Changed"},
        ),
        id="sales order line",
    ),
    pytest.param(
        Document(
            "purchaseorder/PurchaseOrders",
            "purchaseorder/PurchaseOrderLines",
            "sync/PurchaseOrder/PurchaseOrders",
            "PurchaseOrderID",
            {"Description": "Changed"},
        ),
        id="purchase order line",
    ),
    pytest.param(
        Document(
            "crm/Quotations",
            "crm/QuotationLines",
            "sync/CRM/Quotations",
            "QuotationID",
            {"Description": "Changed"},
        ),
        id="quotation line",
    ),
]


def _rows(api: httpx.Client, document: Document, after: int = 0) -> list[dict[str, Any]]:
    """The sync feed's rows after a row version: (Timestamp, document key, line ID, Modified)."""
    select = f"Timestamp,{document.key},ID,Modified"
    params = {"$select": select, "$filter": f"Timestamp gt {after}L"}
    return all_pages(api, f"{API}/{document.sync}", params)


def _head(api: httpx.Client, document: Document) -> int:
    return max(int(row["Timestamp"]) for row in _rows(api, document))


def _modified(clock: ManualClock) -> str:
    return f"/Date({int(clock.now() * 1000)})/"


def _saved(api: httpx.Client, sb: Sandbox, clock: ManualClock, invoice: str, head: int) -> None:
    """The invoice was saved now, and its lines are the feed's rows after ``head``, each with a
    strictly higher row version than the one before."""
    rows = _rows(api, INVOICE, head)
    versions = [int(row["Timestamp"]) for row in rows]
    assert [row["InvoiceID"] for row in rows] == [invoice] * len(_lines_of(sb, invoice))
    assert sorted(row["ID"] for row in rows) == sorted(_lines_of(sb, invoice))
    assert versions == sorted(set(versions)) and versions[0] > head
    assert {row["Modified"] for row in rows} == {_modified(clock)}
    stored = sb.record(DIVISION, INVOICE.endpoint, invoice)
    assert stored is not None and stored["Modified"] == _modified(clock)


def _new_invoice(api: httpx.Client, sb: Sandbox, lines: int) -> str:
    account = sb.records(DIVISION, "crm/Accounts")[0]["ID"]
    item = sb.records(DIVISION, "logistics/Items")[0]["ID"]
    body = {
        "OrderedBy": account,
        "SalesInvoiceLines": [{"Item": item, "Quantity": n + 1} for n in range(lines)],
    }
    created = api.post(f"{API}/{INVOICE.endpoint}", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["d"]["InvoiceID"])


def _lines_of(sb: Sandbox, invoice: str) -> list[str]:
    return [
        line["ID"] for line in sb.records(DIVISION, INVOICE.lines) if line["InvoiceID"] == invoice
    ]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_changing_a_line_saves_its_document(
    api: httpx.Client, sb: Sandbox, clock: ManualClock, document: Document
) -> None:
    """A PUT to a line gives its document a new Modified and row version: the document's rows
    come again in the sync feed, after every row before."""
    line = sb.records(DIVISION, document.lines)[0]
    key = line[document.key]
    document_rows = [row for row in _rows(api, document) if row[document.key] == key]
    head = _head(api, document)
    clock.advance(60)

    changed = api.put(f"{API}/{document.lines}(guid'{line['ID']}')", json=document.change)

    assert changed.status_code == 204, changed.text
    rows = _rows(api, document, head)
    versions = [int(row["Timestamp"]) for row in rows]
    assert sorted(row["ID"] for row in rows) == sorted(row["ID"] for row in document_rows)
    assert {row[document.key] for row in rows} == {key}
    assert versions == sorted(set(versions)) and versions[0] > head
    stored = sb.record(DIVISION, document.endpoint, key)
    assert stored is not None and stored["Modified"] == _modified(clock)
    assert stored["Modified"] != stored["Created"]


def _add(api: httpx.Client, sb: Sandbox, invoice: str) -> None:
    item = sb.records(DIVISION, "logistics/Items")[0]["ID"]
    added = api.post(f"{API}/{INVOICE.lines}", json={"InvoiceID": invoice, "Item": item})
    assert added.status_code == 201, added.text


def _change(api: httpx.Client, sb: Sandbox, invoice: str) -> None:
    line = _lines_of(sb, invoice)[0]
    changed = api.put(f"{API}/{INVOICE.lines}(guid'{line}')", json={"Quantity": 9})
    assert changed.status_code == 204, changed.text


def _delete(api: httpx.Client, sb: Sandbox, invoice: str) -> None:
    line = _lines_of(sb, invoice)[0]
    assert api.delete(f"{API}/{INVOICE.lines}(guid'{line}')").status_code == 204


Write = Callable[[httpx.Client, Sandbox, str], None]


@pytest.mark.parametrize(
    "write", [_add, _change, _delete], ids=["adding a line", "changing a line", "deleting a line"]
)
def test_every_write_to_a_line_of_the_newest_invoice_saves_it(
    api: httpx.Client, sb: Sandbox, clock: ManualClock, write: Write
) -> None:
    """Even on the document already last in the feed, a line added, changed or deleted gives
    each of its remaining rows a new, higher row version and the invoice a new Modified."""
    invoice = _new_invoice(api, sb, lines=2)
    head = _head(api, INVOICE)
    clock.advance(60)

    write(api, sb, invoice)

    _saved(api, sb, clock, invoice, head)


def test_a_deep_insert_saves_the_document_once(api: httpx.Client, sb: Sandbox) -> None:
    """Lines given inline are part of the new invoice: it takes one row version, the next after
    the feed's head, and is new (Created equals Modified)."""
    head = _head(api, INVOICE)

    invoice = _new_invoice(api, sb, lines=3)

    rows = _rows(api, INVOICE, head)
    version = head // 1000 + 1  # a row's version is its document's times 1000, plus its place
    assert [int(row["Timestamp"]) for row in rows] == [version * 1000 + n for n in range(3)]
    stored = sb.record(DIVISION, INVOICE.endpoint, invoice)
    assert stored is not None and stored["Created"] == stored["Modified"]


def test_moving_an_order_line_saves_both_orders(
    api: httpx.Client, sb: Sandbox, clock: ManualClock
) -> None:
    """A sales order line given another OrderID leaves one order and joins another: both change."""
    lines = "salesorder/SalesOrderLines"
    line = sb.records(DIVISION, lines)[0]
    old = line["OrderID"]
    new = next(
        o["OrderID"] for o in sb.records(DIVISION, "salesorder/SalesOrders") if o["OrderID"] != old
    )
    clock.advance(60)

    moved = api.put(f"{API}/{lines}(guid'{line['ID']}')", json={"OrderID": new})

    assert moved.status_code == 204, moved.text
    for order in (old, new):
        stored = sb.record(DIVISION, "salesorder/SalesOrders", order)
        assert stored is not None and stored["Modified"] == _modified(clock), order


def test_a_line_of_a_record_that_is_not_a_document_leaves_it_alone(
    api: httpx.Client, sb: Sandbox, clock: ManualClock
) -> None:
    """A bank account (no LineNumber, no per-line feed) is not a line: its account stays as it was."""
    bank = sb.records(DIVISION, "crm/BankAccounts")[0]
    before = sb.record(DIVISION, "crm/Accounts", bank["Account"])
    clock.advance(60)

    changed = api.put(f"{API}/crm/BankAccounts(guid'{bank['ID']}')", json={"Description": "X"})

    assert changed.status_code == 204, changed.text
    assert sb.record(DIVISION, "crm/Accounts", bank["Account"]) == before


def test_a_line_change_is_delivered_as_a_change_of_its_invoice(clock: ManualClock) -> None:
    """Subscribers to SalesInvoices hear an Update of the invoice whose line changed."""
    delivered: list[dict[str, Any]] = []

    def callback(request: httpx.Request) -> httpx.Response:
        if request.content:
            delivered.append(httpx.Response(200, content=request.content).json()["Content"])
        return httpx.Response(200)

    sb = Sandbox(seed=1, clock=clock, webhook_transport=httpx.MockTransport(callback))
    with client_for(sb, sb.issue_tokens()["access_token"]) as api:
        subscribed = api.post(
            f"{API}/webhooks/WebhookSubscriptions",
            json={"CallbackURL": "https://hooks.example/exact", "Topic": "SalesInvoices"},
        )
        assert subscribed.status_code == 201, subscribed.text
        line = sb.records(DIVISION, INVOICE.lines)[0]

        changed = api.put(f"{API}/{INVOICE.lines}(guid'{line['ID']}')", json={"Quantity": 9})
        sb.webhooks.drain()

    assert changed.status_code == 204, changed.text
    assert [(d["Topic"], d["Action"], d["Key"]) for d in delivered] == [
        ("SalesInvoices", "Update", line["InvoiceID"])
    ]
    assert delivered[0]["ExactOnlineEndpoint"].endswith(
        f"/{INVOICE.endpoint}(guid'{line['InvoiceID']}')"
    )


@pytest.mark.parametrize("skipped", [0, 10, 149, 150], ids=lambda n: f"after {n} rows")
def test_the_count_of_a_per_line_feed_is_of_the_rows_its_filter_keeps(
    api: httpx.Client, skipped: int
) -> None:
    """``$inlinecount`` counts the rows after the ``Timestamp gt`` filter, as other lists do."""
    versions = [int(row["Timestamp"]) for row in _rows(api, INVOICE)]
    after = versions[skipped - 1] if skipped else 0
    params = {
        "$select": "Timestamp",
        "$filter": f"Timestamp gt {after}L",
        "$inlinecount": "allpages",
        "$top": "5",
    }

    answer = api.get(f"{API}/{INVOICE.sync}", params=params)

    assert answer.status_code == 200, answer.text
    assert answer.json()["d"]["__count"] == str(len(versions) - skipped)
