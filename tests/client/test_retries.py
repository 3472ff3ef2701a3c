"""G1-G11: transport faults, the retry matrix, rate limits and the error budget (in-process)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from client_harness import (
    ACCOUNTS,
    DIVISION,
    OTHER_DIVISION,
    RecordingClock,
    World,
    advance,
    create_account,
    endpoint,
    get_accounts,
    make_world,
)

from exact_connector.client import request_headers
from exact_connector.exceptions import (
    DailyRateLimited,
    ErrorBudgetExhausted,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    RequestTimeout,
    TransientError,
)
from exact_connector.odata import key_literal
from exact_connector.retries import MAX_ATTEMPTS, backoff_delay


@pytest.fixture
def timed(tmp_path: Path) -> World:
    """A world whose clock records every sleep (backoff and pacing)."""
    made = make_world(tmp_path / "vault", clock=RecordingClock())
    yield made  # type: ignore[misc]
    made.close()


def _sleeps(world: World) -> list[float]:
    assert isinstance(world.clock, RecordingClock)
    return world.clock.sleeps


def _on_api(
    world: World,
    method: str,
    failure: Callable[[httpx.Request], Exception],
    times: int = 1,
    *,
    processed: bool = False,
) -> None:
    """The next ``times`` API requests of ``method`` fail with ``failure`` instead of an answer;
    with ``processed``, the sandbox handles each one first (the answer is what gets lost)."""
    left = [times]

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.method == method and request.url.path.startswith("/api/v1/") and left[0]:
            left[0] -= 1
            if processed:
                call()
            raise failure(request)

    world.app.tamper = tamper


def _after_processing(
    world: World, method: str, failure: Callable[[httpx.Request], Exception], times: int = 1
) -> None:
    """The next ``times`` API requests of ``method`` are processed, then their answer is lost."""
    _on_api(world, method, failure, times, processed=True)


def _named(world: World, name: str) -> list[dict[str, object]]:
    return [row for row in world.sb.records(DIVISION, ACCOUNTS) if row["Name"] == name]


def _read_timeout(request: httpx.Request) -> Exception:
    return httpx.ReadTimeout("timed out", request=request)


def _connect_error(request: httpx.Request) -> Exception:
    return httpx.ConnectError("connection refused", request=request)


# -- G1 ---------------------------------------------------------------------------------------------


def test_g1_get_read_timeouts_retry_with_full_jitter_then_timeout(timed: World) -> None:
    """Every attempt times out: 4 attempts, 3 jittered waits within [0, 0.5*2^n], then TIMEOUT."""
    _after_processing(timed, "GET", _read_timeout, times=10)
    with pytest.raises(RequestTimeout) as caught:
        get_accounts(timed.client())
    assert caught.value.code == "timeout"
    assert len(timed.app.api_calls()) == 4
    waits = _sleeps(timed)
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):
        assert 0 <= wait <= 0.5 * 2**attempt


def test_g1_a_get_that_times_out_twice_then_answers_succeeds(timed: World) -> None:
    """Two read timeouts, then 200: the caller sees only the success."""
    _after_processing(timed, "GET", _read_timeout, times=2)
    assert get_accounts(timed.client()).status_code == 200
    assert len(timed.app.api_calls()) == 3


# -- G2, G3 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [_connect_error, lambda r: httpx.ConnectTimeout("connect timeout", request=r)],
    ids=["connect-error", "connect-timeout"],
)
def test_g2_a_post_that_was_never_sent_is_retried_and_creates_one_record(
    world: World, failure: Callable[[httpx.Request], Exception]
) -> None:
    """ConnectError / ConnectTimeout: provably not sent, so retried; exactly one record."""
    _on_api(world, "POST", failure)
    assert create_account(world.client(), "G2 Connect").status_code == 201
    assert len(_named(world, "G2 Connect")) == 1
    assert world.sb.counters.records_created[ACCOUNTS] == 1


@pytest.mark.parametrize(
    "failure",
    [
        _read_timeout,
        lambda r: httpx.RemoteProtocolError("Server disconnected", request=r),
        lambda r: httpx.ReadError("connection reset by peer", request=r),
    ],
    ids=["read-timeout", "disconnect", "reset"],
)
def test_g3_a_post_lost_after_processing_is_outcome_unknown_not_retried(
    world: World, failure: Callable[[httpx.Request], Exception]
) -> None:
    """The sandbox created the record, the answer is lost: OUTCOME_UNKNOWN, one request, 1 record."""
    _after_processing(world, "POST", failure)
    with pytest.raises(OutcomeUnknown) as caught:
        create_account(world.client(), "G3 Lost")
    error = caught.value
    assert error.code == "outcome_unknown" and not error.retryable
    assert error.details["method"] == "POST" and error.details["endpoint"] == ACCOUNTS
    assert error.details["client_request_id"]
    assert "check in Exact Online" in error.hint
    assert len(world.app.requests("/crm/Accounts", "POST")) == 1
    assert len(_named(world, "G3 Lost")) == 1


def test_g3_the_sandbox_drop_fault_gives_outcome_unknown_and_one_record(world: World) -> None:
    """The sandbox's own "drop" fault: processed, connection closed, not retried."""
    world.sb.faults.add("drop", method="POST", path_contains="crm/Accounts")
    with pytest.raises(OutcomeUnknown):
        create_account(world.client(), "G3 Drop")
    assert world.sb.counters.records_created[ACCOUNTS] == 1
    assert len(_named(world, "G3 Drop")) == 1
    sent = world.app.requests("/crm/Accounts", "POST")[0]
    assert sent.headers["x-client-request-id"]


def test_every_request_id_is_a_random_version_4_uuid_in_canonical_text() -> None:
    ids = [request_headers("POST")["X-Client-Request-Id"] for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert {text[19] for text in ids} == set("89ab")  # every variant digit occurs


# -- G4 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_g4_a_post_answered_5xx_is_outcome_unknown_not_retried(world: World, status: int) -> None:
    """5xx on POST: Exact may have applied it; one attempt only."""
    world.sb.faults.add("error", status=status, method="POST", after=True)
    with pytest.raises(OutcomeUnknown) as caught:
        create_account(world.client(), "G4 Five")
    assert f"HTTP {status}" in caught.value.message
    assert len(world.app.requests("/crm/Accounts", "POST")) == 1
    assert len(_named(world, "G4 Five")) == 1


def test_g4_a_post_answered_429_waits_for_the_reset_and_creates_one_record(world: World) -> None:
    """429 means not processed: wait for the minutely reset (+1 s), send again, one record."""
    world.sb.faults.add("rate_limit", method="POST")
    start = world.clock.now()
    assert create_account(world.client(), "G4 Throttled").status_code == 201
    first, second = world.app.requests("/crm/Accounts", "POST")
    assert second.at - first.at >= (start // 60 + 1) * 60 + 1 - start
    assert len(_named(world, "G4 Throttled")) == 1


def test_g4_a_post_answered_401_refreshes_and_is_sent_once_more(world: World) -> None:
    """401 for a token the sandbox expired: refresh, then the POST once more; one record."""
    credential = world.credential()
    assert credential.access_token is not None and credential.access_token_issued_at is not None
    world.vault.update_tokens(  # we believe the token lives 1200 s; the sandbox says 600
        credential.id,
        expected_version=credential.version,
        access_token=credential.access_token,
        refresh_token=credential.refresh_token,  # type: ignore[arg-type]
        issued_at=credential.access_token_issued_at,
        expires_at=credential.access_token_issued_at + 1200,
    )
    advance(world.clock, 610)
    assert create_account(world.client(), "G4 Expired").status_code == 201
    assert world.sb.counters.token_grants["refresh_token"] == 1
    assert len(world.app.requests("/crm/Accounts", "POST")) == 2
    assert len(_named(world, "G4 Expired")) == 1


# -- G5 ---------------------------------------------------------------------------------------------


def _account_url(world: World, client: object, account_id: str) -> httpx.URL:
    accounts = endpoint()
    return client.url(accounts, DIVISION, key_literal(account_id, "Edm.Guid"))  # type: ignore[attr-defined]


def test_g5_put_retried_after_a_transient_error(world: World) -> None:
    """PUT meets 503 then succeeds; the change is applied once."""
    client = world.client()
    account = create_account(client, "G5 Put").json()["d"]
    world.sb.faults.add("error", status=503, method="PUT")
    url = _account_url(world, client, account["ID"])
    response = client.request(
        "PUT", url, endpoint=endpoint(), division=DIVISION, json={"Name": "G5 Put 2"}
    )
    assert response.status_code in (200, 204)
    assert len(world.app.requests("/crm/Accounts", "PUT")) == 2
    assert world.sb.record(DIVISION, ACCOUNTS, account["ID"])["Name"] == "G5 Put 2"  # type: ignore[index]


def test_g5_a_delete_whose_retry_finds_nothing_is_reported_absent(world: World) -> None:
    """DELETE processed, answer dropped, retry says 404: returned as 404 (absent), not an error."""
    client = world.client()
    account = create_account(client, "G5 Delete").json()["d"]
    world.sb.faults.add("drop", method="DELETE")
    url = _account_url(world, client, account["ID"])
    response = client.request("DELETE", url, endpoint=endpoint(), division=DIVISION)
    assert response.status_code == 404
    assert world.sb.record(DIVISION, ACCOUNTS, account["ID"]) is None
    assert len(world.app.requests("/crm/Accounts", "DELETE")) == 2


def test_g5_a_404_on_the_first_delete_is_not_found(world: World) -> None:
    """A DELETE of a record that does not exist: NOT_FOUND (nothing was retried)."""
    client = world.client()
    url = _account_url(world, client, "0f0e0d0c-0b0a-0908-0706-050403020100")
    with pytest.raises(NotFound):
        client.request("DELETE", url, endpoint=endpoint(), division=DIVISION)
    assert len(world.app.requests("/crm/Accounts", "DELETE")) == 1


# -- G6, G7 -----------------------------------------------------------------------------------------


def _minute_end(now: float) -> float:
    return (now // 60 + 1) * 60


def test_g6_429_waits_until_the_reset_in_epoch_ms_plus_one_second(world: World) -> None:
    """X-RateLimit-Minutely-Reset is in ms: the retry comes at reset + 1 s, not 1000x later."""
    advance(world.clock, 12)
    world.sb.faults.add("rate_limit", method="GET", path_contains="crm/Accounts")
    assert get_accounts(world.client()).status_code == 200
    first, second = world.app.requests("/crm/Accounts")
    reset = _minute_end(first.at)
    assert reset + 1 <= second.at <= reset + 2


def _answer_429(world: World, headers: dict[str, str]) -> None:
    left = [1]

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        if request.url.path.startswith("/api/v1/") and left[0]:
            left[0] -= 1
            return httpx.Response(429, headers=headers, json={"error": {"message": "throttled"}})
        return None

    world.app.tamper = tamper


def test_g6_a_reset_in_the_past_backs_off_briefly(world: World) -> None:
    """Reset already passed (our clock ahead): a short backoff, never a negative wait."""
    now = world.clock.now()
    _answer_429(
        world,
        {
            "X-RateLimit-Minutely-Limit": "60",
            "X-RateLimit-Minutely-Remaining": "0",
            "X-RateLimit-Minutely-Reset": str(int((now - 5) * 1000)),
        },
    )
    assert get_accounts(world.client()).status_code == 200
    first, second = world.app.requests("/crm/Accounts")
    assert 0 < second.at - first.at <= 3


def test_g6_a_429_without_headers_waits_for_the_next_minute(world: World) -> None:
    """No rate-limit headers: wait for the next clock minute (at most 60 s + margin)."""
    advance(world.clock, 30)
    world.sb.faults.add("rate_limit", method="GET", headers=False)
    assert get_accounts(world.client()).status_code == 200
    first, second = world.app.requests("/crm/Accounts")
    assert _minute_end(first.at) <= second.at <= _minute_end(first.at) + 2


def test_g6_a_wait_longer_than_the_step_is_rate_limited_with_retry_at(world: World) -> None:
    """Reset 50 s away, 10 s left in the step: RATE_LIMITED at once with retry_at; no long sleep."""
    advance(world.clock, 10)
    world.sb.faults.add("rate_limit", method="GET")
    started = world.clock.now()
    with pytest.raises(RateLimited) as caught:
        get_accounts(world.client(), deadline=started + 10)
    assert caught.value.retry_at is not None
    assert caught.value.retry_at.timestamp() == pytest.approx(_minute_end(started) + 1)
    assert world.clock.now() - started < 1
    assert len(world.app.api_calls()) == 1


def test_g7_daily_limit_fails_fast_for_that_division_only(world: World) -> None:
    """Daily Remaining 0 with a reset tomorrow: RATE_LIMITED_DAILY now; other divisions unaffected."""
    now = world.clock.now()
    tomorrow = (now // 86_400 + 1) * 86_400
    _answer_429(
        world,
        {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(tomorrow * 1000)),
        },
    )
    client = world.client()
    with pytest.raises(DailyRateLimited) as caught:
        get_accounts(client)
    assert caught.value.retry_at == datetime.fromtimestamp(tomorrow + 1, UTC)
    assert world.clock.now() - now < 1, "no multi-hour sleep inside a step"
    sent = len(world.app.api_calls())
    with pytest.raises(DailyRateLimited):
        get_accounts(client)
    assert len(world.app.api_calls()) == sent, "the breaker is open: no request"
    assert get_accounts(client, division=OTHER_DIVISION).status_code == 200


def test_g7_the_sandbox_daily_budget_is_learned_from_headers(world: World) -> None:
    """With 3 calls a day at the sandbox: three succeed, the fourth is refused locally."""
    world.sb.rate_limits.daily = 3
    client = world.client()
    for _ in range(3):
        assert get_accounts(client).status_code == 200
    with pytest.raises(DailyRateLimited):
        get_accounts(client)
    assert len(world.app.api_calls()) == 3
    assert world.sb.counters.rate_limited == 0


# -- G8 ---------------------------------------------------------------------------------------------


def _http_date(world: World, seconds: float) -> str:
    moment = datetime.fromtimestamp(world.clock.now(), UTC) + timedelta(seconds=seconds)
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("hint", "low", "high"),
    [
        ("120", 120, 120),
        ("date+30", 29, 31),
        ("date-30", 1, 1),
        ("garbage", 0, 0.5),
        ("0", 1, 1),
    ],
)
def test_g8_retry_after_is_honoured_and_never_negative(
    timed: World, hint: str, low: float, high: float
) -> None:
    """503 + Retry-After as seconds or HTTP-date: waited for; past -> 1 s; garbage -> backoff."""
    if hint.startswith("date"):
        hint = _http_date(timed, float(hint[4:]))
    timed.sb.faults.add("error", status=503, retry_after=hint, method="GET")
    client = timed.client()
    assert get_accounts(client, deadline=timed.clock.now() + 1000).status_code == 200
    [wait] = _sleeps(timed)
    assert low <= wait <= high


def test_g8_a_huge_retry_after_is_capped_by_the_step_budget(timed: World) -> None:
    """Retry-After 999999999: no sleep at all; TIMEOUT with retry_at, within the step's budget."""
    timed.sb.faults.add("error", status=503, retry_after="999999999", method="GET")
    with pytest.raises(RequestTimeout) as caught:
        get_accounts(timed.client(), deadline=timed.clock.now() + 60)
    assert _sleeps(timed) == []
    assert caught.value.retry_at is not None
    assert len(timed.app.api_calls()) == 1


# -- G9 ---------------------------------------------------------------------------------------------


def test_g9_backoff_is_full_jitter_within_its_ceiling() -> None:
    """Seeded: every delay in [0, min(cap, base*2^n)], and they spread over the whole range."""
    rng = random.Random(20260101)
    for attempt in range(8):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, rng=rng) for _ in range(2000)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert min(delays) < ceiling * 0.05 and max(delays) > ceiling * 0.95
        assert sum(delays) / len(delays) == pytest.approx(ceiling / 2, rel=0.1)


def test_g9_a_hundred_clients_failing_together_do_not_retry_in_lockstep(timed: World) -> None:
    """100 clients each meet one 500: their waits are spread, not identical."""
    timed.sb.faults.add("error", status=500, method="GET", times=None)
    for _ in range(100):
        with pytest.raises(TransientError):
            get_accounts(timed.client(), deadline=timed.clock.now() + 1000)
    first_waits = _sleeps(timed)[::3]
    assert len(first_waits) == 100
    assert len({round(wait, 6) for wait in first_waits}) >= 95
    assert max(first_waits) - min(first_waits) > 0.3


# -- G11 --------------------------------------------------------------------------------------------


def test_g11_the_error_budget_refuses_locally_before_exact_blocks(world: World) -> None:
    """404s on one endpoint: stopped locally (ERROR_BUDGET_PROTECT) before Exact's 10; others ok."""
    client = world.client()
    url = _account_url(world, client, "0f0e0d0c-0b0a-0908-0706-050403020100")
    refused = 0
    while refused < 10:
        try:
            client.request("GET", url, endpoint=endpoint(), division=DIVISION)
        except NotFound:
            refused += 1
        except ErrorBudgetExhausted:
            break
    with pytest.raises(ErrorBudgetExhausted) as caught:
        client.request("GET", url, endpoint=endpoint(), division=DIVISION)
    assert caught.value.code == "error_budget_protect" and caught.value.retry_at is not None
    sent = len(world.app.requests("/crm/Accounts"))
    assert refused == sent < 10
    assert world.sb.counters.error_budget_blocks == 0
    times = endpoint("project/TimeTransactions")
    url = client.url(times, DIVISION, params={"$select": "ID"})
    assert client.request("GET", url, endpoint=times, division=DIVISION).status_code == 200


def test_g11_every_attempt_lands_whatever_became_of_it(world: World) -> None:
    """A call counts as in flight from its reservation to its answer: answered, refused (404),
    lost in transport after retries, or stopped by the deadline, it lands, so no phantom call
    holds the endpoint's error budget back (eight of them would stop it for good)."""
    client = world.client()
    accounts = endpoint()
    key = (client.client_id, DIVISION, ACCOUNTS)
    url = _account_url(world, client, "0f0e0d0c-0b0a-0908-0706-050403020100")
    seen_in_flight: list[int] = []

    def count_in_flight(request: httpx.Request, call: Callable[[], httpx.Response]) -> None:
        if request.url.path.startswith("/api/v1/"):
            seen_in_flight.append(client.governor.in_flight(*key))

    world.app.tamper = count_in_flight
    assert get_accounts(client).status_code == 200
    assert seen_in_flight == [1]
    assert client.governor.in_flight(*key) == 0
    with pytest.raises(NotFound):
        client.request("GET", url, endpoint=accounts, division=DIVISION)
    assert client.governor.in_flight(*key) == 0
    _on_api(world, "GET", _connect_error, times=MAX_ATTEMPTS)
    with pytest.raises(TransientError):
        get_accounts(client)
    assert client.governor.in_flight(*key) == 0
    with pytest.raises(RequestTimeout):
        get_accounts(client, deadline=world.clock.now() - 1)
    assert client.governor.in_flight(*key) == 0
    for _ in range(12):
        assert get_accounts(client).status_code == 200
    assert client.governor.in_flight(*key) == 0
