"""Answers a review of the error paths found mishandled: a create answered with an unusual 5xx
or a body that cannot be decoded (either may follow a create Exact made), a token endpoint whose
``error`` is not an OAuth error code, and Exact's words outside its OData JSON error."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from client_harness import (
    ACCOUNTS,
    DIVISION,
    World,
    advance,
    answer_with,
    create_account,
    get_accounts,
)

from exact_connector.exceptions import ExactConnectorError

Answer = Callable[[httpx.Request, Callable[[], httpx.Response]], httpx.Response | None]


def _after_creating(status: int, content: bytes, headers: dict[str, str]) -> Answer:
    """Exact makes the record, then the answer is replaced (a gateway's, a broken one)."""

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.startswith("/api/v1/"):
            call()
            return httpx.Response(status, content=content, headers=headers)
        return None

    return tamper


def _named(world: World, name: str) -> int:
    return sum(row["Name"] == name for row in world.sb.records(DIVISION, ACCOUNTS))


@pytest.mark.parametrize("status", [501, 507, 520, 524])
def test_a_create_answered_with_any_5xx_has_an_unknown_outcome_and_is_not_retryable(
    world: World, status: int
) -> None:
    """Only 500/502/503/504 were known server errors: a 524 (a proxy's timeout after a slow
    create) became a retryable ``transient`` error, and the engine's retry made a duplicate."""
    html = {"Content-Type": "text/html"}
    world.app.tamper = _after_creating(status, b"<html>gateway timeout</html>", html)
    with pytest.raises(ExactConnectorError) as caught:
        create_account(world.client(), "Once B.V.")
    assert (caught.value.code, caught.value.retryable) == ("outcome_unknown", False)
    assert f"HTTP {status}" in caught.value.message
    assert _named(world, "Once B.V.") == 1
    assert len([c for c in world.app.api_calls() if c.method == "POST"]) == 1  # not resent


def test_a_create_whose_answer_cannot_be_decoded_has_an_unknown_outcome(world: World) -> None:
    """A 201 with ``Content-Encoding: gzip`` and a body that is not gzip: httpx's DecodingError
    escaped ``request`` (and ``execute``) as a traceback, after the record was made."""
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    world.app.tamper = _after_creating(201, b"not gzip at all", headers)
    with pytest.raises(ExactConnectorError) as caught:
        create_account(world.client(), "Gzip B.V.")
    assert (caught.value.code, caught.value.retryable) == ("outcome_unknown", False)
    assert "its answer could not be decoded" in caught.value.message
    assert _named(world, "Gzip B.V.") == 1


def test_a_read_whose_answers_cannot_be_decoded_is_retried_then_transient(world: World) -> None:
    """A GET is safe to send again: it is, and after the attempts a transient error is raised."""

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        if request.url.path.startswith("/api/v1/"):
            return httpx.Response(200, content=b"\x00\x01", headers={"Content-Encoding": "gzip"})
        return None

    world.app.tamper = tamper
    with pytest.raises(ExactConnectorError) as caught:
        get_accounts(world.client())
    assert (caught.value.code, caught.value.retryable) == ("transient", True)
    assert len(world.app.api_calls()) > 1


def test_a_token_error_that_is_no_oauth_code_is_not_carried(world: World) -> None:
    """The token endpoint's ``error`` went into ``details.oauth_error`` as sent: a megabyte, a
    terminal's escapes, a token. Only an OAuth error code (a short word) is kept now."""
    refresh = world.credential().refresh_token
    assert refresh is not None
    hostile = "\x1b[2J" + "A" * 100_000 + " token=" + refresh.get_secret_value()
    world.app.tamper = answer_with(400, json.dumps({"error": hostile}))
    advance(world.clock, 595)  # the access token is due for a refresh
    with pytest.raises(ExactConnectorError) as caught:
        get_accounts(world.client())
    answer = json.dumps(caught.value.to_dict())
    assert caught.value.code == "token_response_invalid"
    assert caught.value.details["oauth_error"] is None
    assert len(answer) < 1_000
    assert refresh.get_secret_value() not in answer


@pytest.mark.parametrize(
    ("status", "reason", "body", "said"),
    [
        (400, b"Bad Request - Error in query syntax.", b"", "Bad Request - Error in query syntax."),
        (
            403,
            b"Forbidden",
            b"Forbidden - Application Scope Violated",
            "Application Scope Violated",
        ),
    ],
)
def test_exacts_words_outside_its_json_error_reach_the_message(
    world: World, status: int, reason: bytes, body: bytes, said: str
) -> None:
    """A reason phrase of Exact's own, or a short plain-text body: the message said only
    "Exact Online answered 400." and the person had nothing to act on."""

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        if request.url.path.startswith("/api/v1/"):
            headers = {"Content-Type": "text/plain"}
            return httpx.Response(
                status, content=body, headers=headers, extensions={"reason_phrase": reason}
            )
        return None

    world.app.tamper = tamper
    with pytest.raises(ExactConnectorError) as caught:
        get_accounts(world.client())
    assert said in caught.value.message
    assert caught.value.details["exact_message"].endswith(said)


def test_exacts_message_reaches_the_error_as_one_clean_line(world: World) -> None:
    """Control characters of Exact's message (a terminal's escapes, line breaks, a bell) went
    into the message as sent; they are spaces now, and the message stays bounded."""
    value = "\x1b[2J\x1b[1;31mCall support\x1b[0m\r\nfake line\x07" + "B" * 600

    def tamper(request: httpx.Request, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        if request.url.path.startswith("/api/v1/"):
            error = {"error": {"code": "", "message": {"lang": "", "value": value}}}
            return httpx.Response(400, json=error)
        return None

    world.app.tamper = tamper
    with pytest.raises(ExactConnectorError) as caught:
        get_accounts(world.client())
    message = caught.value.message
    assert message.startswith("Exact Online answered 400: [2J [1;31mCall support [0m fake line B")
    assert not any(ord(c) < 32 or c == "\x7f" for c in message)
    assert len(caught.value.details["exact_message"]) == 500
