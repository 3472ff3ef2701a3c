"""Helpers for the sandbox's tests: a client that talks to a sandbox, recorded answers, paging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from exact_connector.sandbox import Sandbox

HOST = "https://start.exactonline.nl"
DIVISION = 100001
RECORDED = Path(__file__).parent / "recorded"
#: What every Exact client must send to get JSON rather than Atom/XML (API-FACTS §4 "Headers").
ACCEPT_JSON = {"Accept": "application/json"}


def recorded(name: str) -> Any:
    """A recorded Exact answer from ``tests/sandbox/recorded``."""
    return json.loads((RECORDED / name).read_text("utf-8"))


def client_for(sandbox: Sandbox, access_token: str | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client whose transport is the sandbox itself (no sockets)."""
    headers = dict(ACCEPT_JSON)
    if access_token:
        headers["Authorization"] = f"Bearer {access_token}"
    return httpx.Client(
        transport=httpx.MockTransport(sandbox), base_url=HOST, headers=headers, **kwargs
    )


def token_call(client: httpx.Client, sandbox: Sandbox, **form: str) -> httpx.Response:
    """POST the token endpoint with the demo app's credentials and ``form``."""
    app = sandbox.demo_app
    data = {"client_id": app.client_id, "client_secret": app.client_secret, **form}
    return client.post("/api/oauth2/token", data=data)


def refresh_call(client: httpx.Client, sandbox: Sandbox, refresh_token: str) -> httpx.Response:
    """POST the token endpoint for a refresh of ``refresh_token`` (the demo app's credentials)."""
    return token_call(client, sandbox, grant_type="refresh_token", refresh_token=refresh_token)


def all_pages(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> list[Any]:
    """Every record of a list, following ``__next`` links."""
    records: list[Any] = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()["d"]
        records.extend(body["results"])
        if "__next" not in body:
            return records
        response = client.get(body["__next"])


def first_record(api: httpx.Client, endpoint: str, select: str = "ID") -> dict[str, Any]:
    """The first record of ``endpoint`` in the test division, with the ``select``ed fields."""
    answer = api.get(f"/api/v1/{DIVISION}/{endpoint}", params={"$select": select, "$top": "1"})
    return dict(answer.json()["d"]["results"][0])


def new_hours(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    """A valid new time transaction (first project, first hour item, 2.5 h), ``fields`` over it."""
    item = api.get(
        f"/api/v1/{DIVISION}/logistics/Items", params={"$filter": "IsTime eq 1", "$top": "1"}
    )
    return {
        "Project": first_record(api, "project/Projects")["ID"],
        "Item": item.json()["d"]["results"][0]["ID"],
        "Quantity": 2.5,
        **fields,
    }


class SignedIn(httpx.Auth):
    """A test auth that keeps a valid sandbox token, renewing it when the sandbox clock moves on.

    For tests that span hours of sandbox time and are not about tokens (limits, budgets).
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.token: str | None = None
        self.issued = 0.0

    def auth_flow(self, request: httpx.Request) -> Any:
        now = self.sandbox.clock.now()
        if self.token is None or now - self.issued >= 500:
            self.token, self.issued = self.sandbox.issue_tokens()["access_token"], now
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request
