"""A representative subset of E, G and I over real loopback sockets (h11 and the server's own
parsing in the path), against the sandbox served by ``serve``."""

from __future__ import annotations

import httpx
import pytest
from client_harness import (
    ACCOUNTS,
    DIVISION,
    World,
    advance,
    create_account,
    endpoint,
    get_accounts,
    register_secret,
    store_tokens,
)

from exact_connector.exceptions import (
    OutcomeUnknown,
    PaginationLinkRejected,
    ReauthRequired,
    TokenResponseInvalid,
)
from exact_connector.odata import filter_literal, key_literal
from exact_connector.pagination import Pager
from exact_connector.testconnect import run_test_connect

pytestmark = pytest.mark.e2e


def test_e2e_e2_refresh_in_the_window_then_use(wire: World) -> None:
    """Over sockets: one refresh, persisted before the API call that uses it."""
    advance(wire.clock, 585)
    client = wire.client()
    assert get_accounts(client).status_code == 200
    assert get_accounts(client).status_code == 200
    assert wire.sb.counters.token_grants["refresh_token"] == 1
    kinds = [event.kind for event in wire.sb.events]
    assert kinds.index("token") < kinds.index("api")


def test_e2e_e7_a_dropped_refresh_answer_ends_in_one_clear_reauth(wire: World) -> None:
    """The server closes the socket after rotating: one retry, "old token used", REAUTH_REQUIRED."""
    advance(wire.clock, 585)
    wire.sb.faults.add("drop", path_contains="oauth2/token")
    with pytest.raises(ReauthRequired):
        get_accounts(wire.client())
    assert wire.sb.counters.token_calls == 2
    assert wire.credential().status == "needs_reauth"


def test_e2e_g3_a_post_whose_connection_drops_is_outcome_unknown(wire: World) -> None:
    """Processed, then the socket closes with no answer: OUTCOME_UNKNOWN, one record, no retry."""
    wire.sb.faults.add("drop", method="POST", path_contains="crm/Accounts")
    with pytest.raises(OutcomeUnknown) as caught:
        create_account(wire.client(), "E2E Lost Post")
    assert caught.value.code == "outcome_unknown"
    assert len(wire.app.requests("/crm/Accounts", "POST")) == 1
    named = [row for row in wire.sb.records(DIVISION, ACCOUNTS) if row["Name"] == "E2E Lost Post"]
    assert len(named) == 1
    assert wire.sb.counters.records_created[ACCOUNTS] == 1


def test_e2e_g5_a_dropped_delete_retried_finds_the_record_gone(wire: World) -> None:
    """DELETE processed, socket closed; the retry's 404 is returned as "absent"."""
    client = wire.client()
    account = create_account(client, "E2E Delete").json()["d"]
    wire.sb.faults.add("drop", method="DELETE")
    url = client.url(endpoint(), DIVISION, key_literal(account["ID"], "Edm.Guid"))
    response = client.request("DELETE", url, endpoint=endpoint(), division=DIVISION)
    assert response.status_code == 404
    assert wire.sb.record(DIVISION, ACCOUNTS, account["ID"]) is None


def test_e2e_g6_a_429_waits_for_the_minute_then_succeeds(wire: World) -> None:
    """429 with the minutely headers over sockets: waited out on the shared clock, then 200."""
    wire.sb.faults.add("rate_limit", method="GET", path_contains="crm/Accounts")
    assert get_accounts(wire.client()).status_code == 200
    first, second = wire.app.requests("/crm/Accounts")
    assert second.at >= (first.at // 60 + 1) * 60 + 1


def test_e2e_g16_three_pages_and_a_foreign_next(wire: World) -> None:
    """__next links on 127.0.0.1:PORT are followed; one pointing elsewhere is refused."""
    client = wire.client()
    accounts = endpoint()
    url = client.url(accounts, DIVISION, params={"$select": "ID"})
    assert len(list(Pager(client, accounts, DIVISION, url))) == 150
    wire.sb.faults.add("foreign_next", path_contains="crm/Accounts")
    with pytest.raises(PaginationLinkRejected):
        list(Pager(client, accounts, DIVISION, url))


@pytest.mark.parametrize("name", ["O'Brien", "' or 1 eq 1 or '", "A & B # C % D + E ; F"])
def test_e2e_i4_filter_literals_survive_real_url_encoding(wire: World, name: str) -> None:
    """The server parses the raw request line; the literal arrives exactly and matches one row."""
    client = wire.client()
    created = create_account(client, name).json()["d"]
    accounts = endpoint()
    wanted = f"Name eq {filter_literal(name, 'Edm.String')}"
    url = client.url(accounts, DIVISION, params={"$filter": wanted, "$select": "ID"})
    rows = client.request("GET", url, endpoint=accounts, division=DIVISION).json()["d"]["results"]
    assert [row["ID"] for row in rows] == [created["ID"]]
    assert wire.app.requests("/crm/Accounts", "GET")[-1].url.params["$filter"] == wanted


def test_e2e_i7_a_damaged_stored_token_never_reaches_h11(wire: World) -> None:
    """CR/LF in a stored token: refused before sending, so h11 never echoes it (scanner green)."""
    refresh_token = wire.credential().refresh_token
    assert refresh_token is not None
    damaged = {
        "access_token": register_secret("AAEAA-damaged\r\nX-Injected: 1"),
        "refresh_token": refresh_token.get_secret_value(),
    }
    store_tokens(wire.vault, wire.credential_id, damaged, wire.clock.now())
    with pytest.raises(TokenResponseInvalid):
        get_accounts(wire.client())
    assert wire.app.api_calls() == []


def test_e2e_e11_test_connect(wire: World) -> None:
    """Test Connect over sockets: ok, divisions stored, rate-limit headroom read."""
    report = run_test_connect(wire.client(), wire.vault)
    assert report.ok, report.to_dict()
    assert wire.credential().allowed_divisions == tuple(wire.sb.divisions)


def test_e2e_every_request_went_to_the_loopback_origin(wire: World) -> None:
    """Nothing left 127.0.0.1:PORT (the origin the credential names)."""
    get_accounts(wire.client())
    origin = httpx.URL(wire.server_url)
    assert {(seen.url.host, seen.url.port) for seen in wire.app.seen} == {
        (origin.host, origin.port)
    }
