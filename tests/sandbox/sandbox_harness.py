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


def recorded(name: str) -> Any:
    """A recorded Exact answer from ``tests/sandbox/recorded``."""
    return json.loads((RECORDED / name).read_text("utf-8"))


def client_for(sandbox: Sandbox, access_token: str | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client whose transport is the sandbox itself (no sockets)."""
    headers = {"Accept": "application/json"}
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
