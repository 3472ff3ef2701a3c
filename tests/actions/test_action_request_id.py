"""``meta.request_id`` is Exact's own request id when its answer carries one, and absent when not:
never a placeholder (issue 14)."""

from __future__ import annotations

import httpx
import pytest
from actions_harness import Bench

DIVISION = 100001
LIST = {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 1}


@pytest.mark.parametrize("header", ["X-Request-Id", "Request-Id", "X-Correlation-Id"])
def test_the_request_id_exact_sent_is_in_meta(
    bench: Bench, monkeypatch: pytest.MonkeyPatch, header: str
) -> None:
    def tagged(request: httpx.Request) -> httpx.Response:
        answer = bench.sandbox(request)
        answer.headers[header] = "exact-request-7f3a"
        return answer

    monkeypatch.setattr(bench.connector, "transport", httpx.MockTransport(tagged))
    result = bench.connector.execute("list_or_get_endpoint", bench.credential_id, LIST)
    assert result["ok"] is True
    assert result["meta"]["request_id"] == "exact-request-7f3a"


def test_without_a_request_id_from_exact_meta_has_none(bench: Bench) -> None:
    result = bench.connector.execute("list_or_get_endpoint", bench.credential_id, LIST)
    assert result["ok"] is True
    assert "request_id" not in result["meta"]
