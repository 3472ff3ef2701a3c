"""Exact Online's API by hand: raw httpx against the sandbox on loopback.

Runs the whole life of an Exact integration with no connector code, to show what the connector
has to get right: the authorization-code flow, ``Accept: application/json`` (without it Exact
answers Atom/XML), paging with ``__next``, create/update/delete,
refresh-token rotation (an early refresh and a reused token are both refused), and the
60-calls-a-minute limit. The sandbox runs on a manual clock so ten minutes pass in no time.

    python examples/raw_httpx_walkthrough.py
"""

from __future__ import annotations

import secrets
import sys
from urllib.parse import parse_qs, urlsplit

import httpx

from exact_connector.sandbox import ManualClock, Sandbox, serve


def check(condition: bool, what: str) -> None:
    """Stop with a message when the sandbox did not answer as Exact would."""
    if not condition:
        print(f"unexpected: {what}", file=sys.stderr)
        raise SystemExit(1)


def authorize(http: httpx.Client, sandbox: Sandbox) -> dict[str, str]:
    """Open the consent URL, take the code from the redirect, exchange it for tokens."""
    app, state = sandbox.demo_app, secrets.token_urlsafe(16)
    params = {
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uris[0],
        "response_type": "code",
        "state": state,
        "force_login": "0",
    }
    redirect = http.get("/api/oauth2/auth", params=params)
    check(redirect.status_code == 302, f"authorize answered {redirect.status_code}")
    query = parse_qs(urlsplit(redirect.headers["location"]).query)
    check(query.get("state") == [state], "state came back changed")
    form = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": app.redirect_uris[0],
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    answer = http.post("/api/oauth2/token", data=form)
    check(answer.status_code == 200, f"code exchange answered {answer.status_code}")
    tokens = answer.json()
    print(
        f"authorized: code exchanged, expires_in={tokens['expires_in']!r} (a string, as at Exact)"
    )
    return dict(tokens)


def refresh(http: httpx.Client, sandbox: Sandbox, refresh_token: str) -> httpx.Response:
    """One refresh-token grant."""
    app = sandbox.demo_app
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    return http.post("/api/oauth2/token", data=form)


def accept_json(http: httpx.Client, url: str, bearer: dict[str, str]) -> None:
    """Exact answers JSON only to Accept: application/json; without it, an Atom feed."""
    token_only = {"Authorization": bearer["Authorization"]}
    atom = http.get(url, params={"$top": "1"}, headers=token_only)
    check(atom.headers["content-type"].startswith("application/atom+xml"), "no Atom without Accept")
    json_answer = http.get(url, params={"$top": "1"}, headers=bearer)
    check(json_answer.headers["content-type"].startswith("application/json"), "no JSON")
    print("accept: without Accept: application/json the answer is Atom XML; with it, JSON")


def list_all(http: httpx.Client, url: str, bearer: dict[str, str]) -> None:
    """Page through a list by following ``__next`` until it is absent."""
    pages, rows = 0, 0
    response = http.get(url, params={"$select": "ID,ProjectCode,Quantity"}, headers=bearer)
    while True:
        check(response.status_code == 200, f"list answered {response.status_code}")
        body = response.json()["d"]
        pages, rows = pages + 1, rows + len(body["results"])
        if "__next" not in body:
            break
        response = http.get(body["__next"], headers=bearer)
    print(f"listed: {rows} time transactions in {pages} pages via __next")


def create_update_delete(http: httpx.Client, division: int, bearer: dict[str, str]) -> None:
    """POST a time transaction, PUT a change, DELETE it."""
    hours = f"/api/v1/{division}/project/TimeTransactions"
    projects = http.get(
        f"/api/v1/{division}/project/Projects", params={"$top": "1"}, headers=bearer
    )
    items = http.get(
        f"/api/v1/{division}/logistics/Items",
        params={"$filter": "IsTime eq 1", "$top": "1"},
        headers=bearer,
    )
    new = {
        "Project": projects.json()["d"]["results"][0]["ID"],
        "Item": items.json()["d"]["results"][0]["ID"],
        "Quantity": 2.5,
        "Notes": "Walkthrough",
    }
    created = http.post(hours, json=new, headers={**bearer, "Prefer": "return=representation"})
    check(created.status_code == 201, f"create answered {created.status_code}")
    record = created.json()["d"]
    key = f"{hours}(guid'{record['ID']}')"
    print(f"created: {record['ID']} on project {record['ProjectCode']} ({record['Quantity']} h)")
    updated = http.put(key, json={"Quantity": 3.0}, headers=bearer)
    check(updated.status_code == 204, f"update answered {updated.status_code}")
    check(http.get(key, headers=bearer).json()["d"]["Quantity"] == 3.0, "update not visible")
    print("updated: Quantity 3.0 (204 No Content, then read back)")
    deleted = http.delete(key, headers=bearer)
    check(deleted.status_code == 204, f"delete answered {deleted.status_code}")
    check(http.get(key, headers=bearer).status_code == 404, "deleted record still there")
    print("deleted: 204, and the record now answers 404")


def rotation(http: httpx.Client, sandbox: Sandbox, clock: ManualClock, old: str) -> None:
    """Too early is refused; at 571 s the token rotates; the old one is then refused for good."""
    early = refresh(http, sandbox, old)
    check(early.status_code == 400, f"early refresh answered {early.status_code}")
    reason = early.headers["reason"]
    print(f"early refresh rejected: {early.status_code} {early.json()['error']} (Reason: {reason})")
    clock.advance(571)
    fresh = refresh(http, sandbox, old)
    check(fresh.status_code == 200, f"refresh at 571 s answered {fresh.status_code}")
    print("refreshed after 571 s: a new refresh token replaces the old one")
    reuse = refresh(http, sandbox, old)
    check(reuse.status_code == 401, f"reuse answered {reuse.status_code}")
    error = reuse.json()
    print(f"token reuse rejected: 401 {error['error']}: {error['error_description']}")
    bearer = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    check(http.get("/api/v1/current/Me", headers=bearer).status_code == 401, "grant not revoked")
    print("after reuse the whole grant is revoked: the new access token answers 401 too")


def rate_limit(http: httpx.Client, clock: ManualClock, url: str, bearer: dict[str, str]) -> None:
    """60 calls in one clock minute pass; the 61st is answered 429."""
    clock.advance(60 - clock.now() % 60)
    params = {"$top": "1", "$select": "ID"}
    statuses = [http.get(url, params=params, headers=bearer).status_code for _ in range(60)]
    check(statuses == [200] * 60, "a call within the first 60 was refused")
    last = http.get(url, params=params, headers=bearer)
    check(last.status_code == 429, f"call 61 answered {last.status_code}")
    remaining = last.headers["x-ratelimit-minutely-remaining"]
    reset = last.headers["x-ratelimit-minutely-reset"]
    print(f"rate limit: 60 calls in a minute accepted, then 429 (left {remaining}, reset {reset})")


def main() -> int:
    """Walk through it all; exit 0 when every answer was Exact's."""
    clock = ManualClock()
    sandbox = Sandbox(seed=1, auto_consent=True, clock=clock, limits=True)
    with serve(sandbox) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        print(f"sandbox: {base_url}")
        tokens = authorize(http, sandbox)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"}
        division = http.get("/api/v1/current/Me", headers=bearer).json()["d"]["results"][0][
            "CurrentDivision"
        ]
        print(f"current division: {division}")
        hours = f"/api/v1/{division}/project/TimeTransactions"
        accept_json(http, hours, bearer)
        list_all(http, hours, bearer)
        create_update_delete(http, division, bearer)
        rotation(http, sandbox, clock, tokens["refresh_token"])
        tokens = authorize(http, sandbox)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/json"}
        rate_limit(http, clock, hours, bearer)
    print("walkthrough complete")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
