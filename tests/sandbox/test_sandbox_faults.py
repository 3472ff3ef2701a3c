"""Injected faults: each kind, in-process, and what it leaves behind in the store."""

from __future__ import annotations

import httpx
import pytest
from sandbox_harness import DIVISION, client_for, new_hours, refresh_call

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

TT = f"/api/v1/{DIVISION}/project/TimeTransactions"


def test_latency_waits_on_the_sandbox_clock(
    api: httpx.Client, sb: Sandbox, clock: ManualClock
) -> None:
    """latency sleeps on the sandbox's clock (a manual clock just moves) and still answers."""
    sb.faults.add("latency", seconds=2.5)
    before = clock.now()
    assert api.get("/api/v1/current/Me").status_code == 200
    assert clock.now() - before == 2.5


def test_error_fires_on_the_nth_matching_call_only(api: httpx.Client, sb: Sandbox) -> None:
    """error(on_call=2, path_contains=…) fails just the second matching request, unprocessed."""
    fault = sb.faults.add(
        "error", status=503, on_call=2, path_contains="logistics/Items", retry_after=7
    )
    statuses = [
        api.get(f"/api/v1/{DIVISION}/logistics/Items", params={"$top": "1"}).status_code
        for _ in range(3)
    ]
    me = api.get("/api/v1/current/Me")
    assert statuses == [200, 503, 200]
    assert me.status_code == 200
    assert (fault.seen, fault.fired, fault.exhausted) == (2, 1, True)
    assert sb.counters.faults_fired["error"] == 1


def test_error_answers_carry_exacts_body_and_retry_after(api: httpx.Client, sb: Sandbox) -> None:
    """A 5xx fault answers Exact's generic problem message and Retry-After when asked."""
    sb.faults.add("error", status=503, retry_after=30)
    answer = api.get("/api/v1/current/Me")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert answer.json()["error"]["message"]["value"].startswith("A problem has occurred.")


def test_a_post_that_failed_before_processing_created_nothing(
    api: httpx.Client, sb: Sandbox
) -> None:
    """error acts before processing: the store is unchanged."""
    body = new_hours(api)
    sb.faults.add("error", status=500, method="POST")
    assert api.post(TT, json=body).status_code == 500
    assert sb.count(DIVISION, "project/TimeTransactions") == 150


def test_error_after_processing_leaves_the_record(api: httpx.Client, sb: Sandbox) -> None:
    """error(after=True) processes the request, then answers 5xx: the record exists."""
    body = new_hours(api)
    sb.faults.add("error", status=502, method="POST", after=True)
    assert api.post(TT, json=body).status_code == 502
    assert sb.count(DIVISION, "project/TimeTransactions") == 151


def test_drop_loses_the_answer_but_the_record_is_created(api: httpx.Client, sb: Sandbox) -> None:
    """drop raises a transport error in-process after the POST took effect."""
    body = new_hours(api)
    sb.faults.add("drop", method="POST", path_contains="TimeTransactions")
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(TT, json=body)
    assert sb.count(DIVISION, "project/TimeTransactions") == 151
    assert sb.counters.records_created["project/TimeTransactions"] == 1
    assert api.post(TT, json=body).status_code == 201


def test_malformed_json_truncates_the_body(api: httpx.Client, sb: Sandbox) -> None:
    """malformed_json keeps status and content type but the JSON does not parse."""
    sb.faults.add("malformed_json")
    answer = api.get(TT)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|delimiter"):
        answer.json()


def test_html_answers_an_error_page(api: httpx.Client, sb: Sandbox) -> None:
    """html answers text/html, as IIS does in front of Exact."""
    sb.faults.add("html", status=502)
    answer = api.get(TT)
    assert answer.status_code == 502
    assert answer.headers["content-type"].startswith("text/html")
    assert "<html>" in answer.text


def test_redirect_points_at_a_foreign_host(api: httpx.Client, sb: Sandbox) -> None:
    """redirect answers 302 with a Location on another host."""
    sb.faults.add("redirect", location="https://evil.example/steal")
    answer = api.get(TT)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://evil.example/steal"


def test_foreign_next_moves_the_next_link_to_another_host(api: httpx.Client, sb: Sandbox) -> None:
    """foreign_next keeps the path and query of __next but changes its host."""
    honest = api.get(TT).json()["d"]["__next"]
    sb.faults.add("foreign_next", host="evil.example")
    forged = api.get(TT).json()["d"]["__next"]
    assert forged == honest.replace("start.exactonline.nl", "evil.example")


def test_rate_limit_storm_answers_429_n_times(api: httpx.Client, sb: Sandbox) -> None:
    """rate_limit(times=3) answers three 429s with minutely headers, then normal service."""
    sb.faults.add("rate_limit", times=3)
    answers = [api.get(TT, params={"$top": "1"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200]
    assert answers[0].headers["x-ratelimit-minutely-remaining"] == "0"
    assert sb.counters.rate_limited == 3


def test_rate_limit_without_headers(api: httpx.Client, sb: Sandbox) -> None:
    """rate_limit(headers=False) is the older, header-less 429."""
    sb.faults.add("rate_limit", headers=False)
    answer = api.get(TT)
    assert answer.status_code == 429
    assert not [h for h in answer.headers if h.startswith("x-ratelimit")]


def test_faults_can_run_for_ever_and_be_cleared(api: httpx.Client, sb: Sandbox) -> None:
    """times=None keeps firing until clear()."""
    sb.faults.add("error", status=500, times=None)
    assert [api.get(TT).status_code for _ in range(3)] == [500, 500, 500]
    assert len(sb.faults) == 1
    sb.faults.clear()
    assert api.get(TT).status_code == 200


def test_fault_arguments_are_checked(sb: Sandbox) -> None:
    """Unknown kinds and parameters are programming errors."""
    with pytest.raises(ValueError, match="unknown fault kind"):
        sb.faults.add("meteor")
    with pytest.raises(TypeError, match="no parameter"):
        sb.faults.add("drop", seconds=1)
    with pytest.raises(ValueError, match="count from 1"):
        sb.faults.add("drop", on_call=0)


# -- token endpoint faults -----------------------------------------------------------------------


def test_lost_token_response_rotates_the_refresh_token(sb: Sandbox, clock: ManualClock) -> None:
    """drop on the token endpoint: the refresh happened, so retrying with the old token is reuse."""
    tokens = sb.issue_tokens()
    clock.advance(580)
    sb.faults.add("drop", path_contains="oauth2/token")
    with client_for(sb) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            refresh_call(client, sb, tokens["refresh_token"])
        retry = refresh_call(client, sb, tokens["refresh_token"])
    assert retry.status_code == 401
    assert retry.json()["error_description"] == "Old refresh token used."
    assert sb.counters.token_grants["refresh_token"] == 1
    assert sb.counters.refresh_reuse == 1


def test_token_endpoint_503_with_retry_after_rotates_nothing(
    sb: Sandbox, clock: ManualClock
) -> None:
    """A 503 before processing leaves the refresh token usable."""
    tokens = sb.issue_tokens()
    clock.advance(580)
    sb.faults.add("error", status=503, retry_after=120, path_contains="oauth2/token")
    with client_for(sb) as client:
        busy = refresh_call(client, sb, tokens["refresh_token"])
        assert (busy.status_code, busy.headers["retry-after"]) == (503, "120")
        again = refresh_call(client, sb, tokens["refresh_token"])
    assert again.status_code == 200


def test_malformed_token_json(sb: Sandbox, clock: ManualClock) -> None:
    """malformed_json on the token endpoint: 200 with a body that does not parse (and rotated)."""
    tokens = sb.issue_tokens()
    clock.advance(580)
    sb.faults.add("malformed_json", path_contains="oauth2/token")
    with client_for(sb) as client:
        answer = refresh_call(client, sb, tokens["refresh_token"])
    assert answer.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated|delimiter"):
        answer.json()
    assert sb.counters.token_grants["refresh_token"] == 1


def test_trickle_delivers_the_body_slowly_on_the_sandbox_clock(
    api: httpx.Client, sb: Sandbox, clock: ManualClock
) -> None:
    """trickle sends `chunk` bytes every `interval` seconds: the body is whole, time has passed."""
    whole = api.get(TT, params={"$top": "3"}).content
    sb.faults.add("trickle", chunk=100, interval=2.0)
    before = clock.now()
    slow = api.get(TT, params={"$top": "3"})
    assert slow.content == whole
    assert clock.now() - before == 2.0 * ((len(whole) - 1) // 100)
