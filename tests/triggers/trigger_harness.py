"""Helpers for the trigger tests: change records as another Exact user would, poll, acknowledge."""

from __future__ import annotations

from typing import Any

import httpx
from actions_harness import Bench

from exact_connector.testing import register_secret

DIVISION = 100001
ACCOUNTS = "crm/Accounts"
TIME_TRANSACTIONS = "project/TimeTransactions"
INVOICES = "salesinvoice/SalesInvoices"


class Exact:
    """Writes straight to the sandbox's REST API with a token of its own (not the connector's)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        token = bench.sb.issue_tokens()["access_token"]
        register_secret(token)
        self._http = httpx.Client(
            transport=httpx.MockTransport(bench.sb),
            base_url=f"https://start.exactonline.nl/api/v1/{DIVISION}/",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def create(self, endpoint: str, body: dict[str, Any]) -> str:
        """A new record; its ID."""
        self.bench.clock.advance(1)
        response = self._http.post(endpoint, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["d"]["ID"])

    def new_invoice(self, lines: int) -> str:
        """A sales invoice with ``lines`` lines (Exact's deep insert); its InvoiceID."""
        sb = self.bench.sb
        account = sb.records(DIVISION, ACCOUNTS)[0]["ID"]
        item = sb.records(DIVISION, "logistics/Items")[0]["ID"]
        body = {
            "InvoiceTo": account,
            "OrderedBy": account,
            "SalesInvoiceLines": [{"Item": item, "Quantity": n + 1} for n in range(lines)],
        }
        self.bench.clock.advance(1)
        response = self._http.post(INVOICES, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["d"]["InvoiceID"])

    def update(self, endpoint: str, key: str, body: dict[str, Any]) -> None:
        """Change a record."""
        self.bench.clock.advance(1)
        response = self._http.put(f"{endpoint}(guid'{key}')", json=body)
        assert response.status_code == 204, response.text

    def delete(self, endpoint: str, key: str) -> None:
        """Remove a record."""
        self.bench.clock.advance(1)
        response = self._http.delete(f"{endpoint}(guid'{key}')")
        assert response.status_code == 204, response.text

    def new_account(self, name: str) -> str:
        return self.create(ACCOUNTS, {"Name": name})

    def new_time_transaction(self, quantity: float) -> str:
        sb = self.bench.sb
        item = next(r for r in sb.records(DIVISION, "logistics/Items") if r.get("IsTime"))
        project = sb.records(DIVISION, "project/Projects")[0]
        body = {"Item": item["ID"], "Project": project["ID"], "Quantity": quantity}
        return self.create(TIME_TRANSACTIONS, body)


def poll(bench: Bench, trigger: str, **inputs: Any) -> dict[str, Any]:
    """One successful poll's data."""
    result = bench.connector.triggers.poll(
        trigger, bench.credential_id, {"division": DIVISION, **inputs}
    )
    assert result["ok"], result
    return dict(result["data"])


def poll_and_ack(bench: Bench, trigger: str, **inputs: Any) -> list[dict[str, Any]]:
    """Poll, acknowledge, and return the events handed over."""
    data = poll(bench, trigger, **inputs)
    assert bench.connector.triggers.ack(bench.credential_id, data["checkpoint"]) is True
    return list(data["events"])
