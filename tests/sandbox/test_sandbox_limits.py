"""Rate limits (60 a minute, 5000 a day per app and division) and the hourly error budget."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sandbox_harness import DIVISION, SignedIn, client_for

from exact_connector.clock import ManualClock
from exact_connector.sandbox import Sandbox

ITEMS = f"/api/v1/{DIVISION}/logistics/Items"
MINUTELY = {
    "x-ratelimit-minutely-limit",
    "x-ratelimit-minutely-remaining",
    "x-ratelimit-minutely-reset",
}
DAILY = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}


@pytest.fixture
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    """A client that stays signed in however far the test moves the clock."""
    with client_for(sb, auth=SignedIn(sb)) as client:
        yield client


def _rate_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name: value for name, value in response.headers.items() if name.startswith("x-ratelimit")
    }


def _call(api: httpx.Client, url: str = ITEMS) -> httpx.Response:
    return api.get(url, params={"$top": "1", "$select": "ID"})


def test_division_calls_carry_all_six_headers_in_epoch_ms(
    api: httpx.Client, clock: ManualClock
) -> None:
    """Limits, what remains, and resets at the next whole minute and the next UTC midnight."""
    clock.advance(12 * 3600 + 25)  # 2026-01-01T12:00:25Z
    headers = _rate_headers(_call(api))
    assert headers == {
        "x-ratelimit-minutely-limit": "60",
        "x-ratelimit-minutely-remaining": "59",
        "x-ratelimit-minutely-reset": str(1_767_268_860_000),  # 12:01:00Z
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4999",
        "x-ratelimit-reset": str(1_767_312_000_000),  # 2026-01-02T00:00:00Z
    }


def test_me_carries_no_rate_limit_headers_and_costs_nothing(api: httpx.Client) -> None:
    """Calls without a division are outside the limits."""
    for _ in range(70):
        assert _rate_headers(api.get("/api/v1/current/Me")) == {}
    assert _rate_headers(_call(api))["x-ratelimit-minutely-remaining"] == "59"


def test_the_61st_call_in_a_minute_is_429_with_only_minutely_headers(
    api: httpx.Client, sb: Sandbox
) -> None:
    """60 calls pass; the next is refused until the clock minute turns."""
    remaining = [_rate_headers(_call(api))["x-ratelimit-minutely-remaining"] for _ in range(60)]
    assert remaining == [str(n) for n in range(59, -1, -1)]
    refused = _call(api)
    assert refused.status_code == 429
    assert set(_rate_headers(refused)) == MINUTELY
    assert refused.headers["x-ratelimit-minutely-remaining"] == "0"
    assert "error" in refused.json()
    assert sb.counters.rate_limited == 1
    assert sb.counters.calls("logistics/Items", 429) == 1


def test_minute_windows_are_aligned_to_the_clock(api: httpx.Client, clock: ManualClock) -> None:
    """Spent at 00:00:59, the budget is back at 00:01:00, not 60 s after the first call."""
    clock.advance(59)
    for _ in range(60):
        _call(api)
    assert _call(api).status_code == 429
    clock.advance(1)
    answer = _call(api)
    assert answer.status_code == 200
    assert answer.headers["x-ratelimit-minutely-remaining"] == "59"


def test_throttled_calls_do_not_count(api: httpx.Client, clock: ManualClock) -> None:
    """429s do not use the daily budget."""
    for _ in range(70):
        _call(api)
    clock.advance(60)
    assert _call(api).headers["x-ratelimit-remaining"] == str(5000 - 61)


def test_budgets_are_per_division(api: httpx.Client) -> None:
    """Spending one division's minute leaves another's untouched."""
    for _ in range(60):
        _call(api)
    assert _call(api).status_code == 429
    other = _call(api, "/api/v1/100002/logistics/Items")
    assert other.status_code == 200
    assert other.headers["x-ratelimit-minutely-remaining"] == "59"


def test_budgets_are_per_app(clock: ManualClock) -> None:
    """Two apps on one division each get their own 60."""
    from exact_connector.sandbox import SandboxApp

    apps = [
        SandboxApp("one", "secret-one-1", ("http://127.0.0.1:1/cb",)),
        SandboxApp("two", "secret-two-2", ("http://127.0.0.1:2/cb",)),
    ]
    sandbox = Sandbox(clock=clock, apps=apps)
    with client_for(sandbox, sandbox.issue_tokens(app=apps[0])["access_token"]) as one:
        for _ in range(60):
            _call(one)
        assert _call(one).status_code == 429
    with client_for(sandbox, sandbox.issue_tokens(app=apps[1])["access_token"]) as two:
        assert _call(two).status_code == 200


def test_the_daily_budget_ends_in_a_daily_429_until_utc_midnight(
    api: httpx.Client, clock: ManualClock
) -> None:
    """After 5000 calls in a UTC day: 429 with the daily headers, reset at the next midnight."""
    for minute in range(84):
        for _ in range(60 if minute < 83 else 20):
            assert _call(api).status_code == 200
        clock.advance(60)
    refused = _call(api)
    assert refused.status_code == 429
    assert set(_rate_headers(refused)) == DAILY
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == str(1_767_312_000_000)
    clock.advance(86_400 - clock.now() % 86_400)
    assert _call(api).headers["x-ratelimit-remaining"] == "4999"


def test_limits_can_be_switched_off_at_runtime(api: httpx.Client, sb: Sandbox) -> None:
    """With limits off nothing is throttled and no rate-limit headers are sent."""
    sb.limits_enabled = False
    for _ in range(80):
        answer = _call(api)
        assert answer.status_code == 200
    assert _rate_headers(answer) == {}
    sb.limits_enabled = True
    assert _call(api).headers["x-ratelimit-minutely-remaining"] == "59"


# -- the error budget ----------------------------------------------------------------------------


def _fail(api: httpx.Client) -> httpx.Response:
    return api.get(f"{ITEMS}(guid'00000000-0000-0000-0000-000000000000')")


def test_eleven_errors_in_an_hour_block_the_endpoint(
    api: httpx.Client, sb: Sandbox, clock: ManualClock
) -> None:
    """The 11th 4xx starts a block: that endpoint then answers 429, others still work."""
    for minute in range(11):
        assert _fail(api).status_code == 404
        clock.advance(60 if minute % 5 == 4 else 1)
    blocked = _call(api)
    assert blocked.status_code == 429
    assert "blocked" in blocked.json()["error"]["message"]["value"]
    assert not _rate_headers(blocked)
    assert api.get(f"/api/v1/{DIVISION}/crm/Accounts", params={"$top": "1"}).status_code == 200
    assert sb.counters.error_budget_blocks == 1
    assert [e.detail for e in sb.events if e.kind == "block"] == ["logistics/Items"]


def test_ten_errors_do_not_block(api: httpx.Client) -> None:
    """Ten errors in an hour are within the budget."""
    for _ in range(10):
        _fail(api)
    assert _call(api).status_code == 200


def test_errors_older_than_an_hour_do_not_count(api: httpx.Client, clock: ManualClock) -> None:
    """The budget is a sliding hour."""
    for _ in range(10):
        _fail(api)
    clock.advance(3601)
    _fail(api)
    assert _call(api).status_code == 200


def test_a_block_lifts_after_an_hour_and_grows_when_repeated(
    api: httpx.Client, clock: ManualClock
) -> None:
    """First block 1 h; a second block the same day lasts 2 h."""
    for hours in (1, 2):
        for _ in range(11):
            _fail(api)
        clock.advance(hours * 3600 - 1)
        assert _call(api).status_code == 429
        clock.advance(1)
        assert _call(api).status_code == 200


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_of_each_kind_count(api: httpx.Client, status: int) -> None:
    """400, 403 and 404 all count toward the budget."""
    failing = {
        400: lambda: api.get(ITEMS, params={"$filter": "Code eq"}),
        403: lambda: api.get("/api/v1/999999/logistics/Items"),
        404: lambda: _fail(api),
    }[status]
    for _ in range(11):
        assert failing().status_code == status
    url = ITEMS if status != 403 else "/api/v1/999999/logistics/Items"
    assert _call(api, url).status_code == 429


def test_expired_tokens_count_as_401_errors(sb: Sandbox, clock: ManualClock) -> None:
    """A known but expired token's 401s count against its app's budget."""
    tokens = sb.issue_tokens()
    with client_for(sb, tokens["access_token"]) as stale:
        clock.advance(600)
        for _ in range(11):
            assert _call(stale).status_code == 401
    with client_for(sb, sb.issue_tokens()["access_token"]) as fresh:
        assert _call(fresh).status_code == 429


def test_the_date_header_is_the_sandbox_clock(api: httpx.Client, clock: ManualClock) -> None:
    """Date and the reset headers come from one clock, so a client can compare them."""
    answer = _call(api)
    assert answer.headers["date"] == "Thu, 01 Jan 2026 00:00:00 GMT"


# -- sizes (API-FACTS §3 "Sizes") ----------------------------------------------------------------


def test_a_url_over_6000_characters_is_refused_before_anything_else(
    api: httpx.Client, sb: Sandbox
) -> None:
    """6,000 characters after encoding pass; 6,001 answer 414 before the rate limits count it."""
    prefix = f"https://start.exactonline.nl{ITEMS}?$filter=Code%20eq%20'"
    fits, over = (prefix + "a" * (size - len(prefix) - 1) + "'" for size in (6000, 6001))
    assert (len(str(httpx.URL(fits))), len(str(httpx.URL(over)))) == (6000, 6001)
    assert api.get(httpx.URL(fits)).status_code == 200
    refused = api.get(httpx.URL(over))
    assert refused.status_code == 414
    assert "at most 6000" in refused.json()["error"]["message"]["value"]
    assert "x-ratelimit-remaining" not in refused.headers
    assert sb.counters.calls(status=414) == 1


def test_a_body_over_10_mb_is_refused_and_creates_nothing(api: httpx.Client, sb: Sandbox) -> None:
    """10,000,000 bytes is the most Exact accepts ("10 MB"): one byte more answers 413."""
    url = f"/api/v1/{DIVISION}/crm/Accounts"
    before = sb.count(DIVISION, "crm/Accounts")
    shell = b'{"Name":"Big B.V.","Remarks":"'
    body, too_big = (shell + b"x" * (size - len(shell) - 2) + b'"}' for size in (10**7, 10**7 + 1))
    assert (len(body), len(too_big)) == (10_000_000, 10_000_001)
    refused = api.post(url, content=too_big, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413
    assert sb.count(DIVISION, "crm/Accounts") == before
    accepted = api.post(url, content=body, headers={"Content-Type": "application/json"})
    assert accepted.status_code == 201
