"""Test Connect: a structured report on whether a credential can do real work.

Each check runs even when an earlier one failed where it can, never raises, and carries a
remediation line a person can act on. Accessible divisions found here are stored on the credential:
they are what every action's division is checked against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from exact_connector.catalog import catalog
from exact_connector.exceptions import ExactConnectorError, ExactError
from exact_connector.odata import unwrap_record
from exact_connector.pagination import Pager, read_json

if TYPE_CHECKING:
    from exact_connector.client import ExactClient
    from exact_connector.vault import Vault

__all__ = ["Check", "Report", "load_divisions", "run_test_connect"]

_DAY = 86400.0


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None
    remediation: str | None = None
    code: str | None = None
    category: str | None = None
    retry_at: str | None = None  # a failure that passes with time: when to test again (ISO 8601)


@dataclass
class Report:
    """Everything Test Connect found; ``ok`` only when every check passed."""

    credential_id: str
    connector_name: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed (warnings allowed)."""
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; holds no secret."""
        return {
            "ok": self.ok,
            "credential_id": self.credential_id,
            "connector_name": self.connector_name,
            "checks": [asdict(check) for check in self.checks],
        }


def _failed(name: str, error: ExactConnectorError) -> Check:
    # A failure that passes with time: the test is what to run again, not a step.
    remediation = "Run Test Connect again after retry_at." if error.retry_at else error.hint
    return Check(
        name,
        False,
        error.message,
        detail=dict(error.details),
        remediation=remediation,
        code=error.code,
        category=error.category.value,
        retry_at=error.retry_at.isoformat() if error.retry_at is not None else None,
    )


def run_test_connect(
    client: ExactClient, vault: Vault, *, deadline_seconds: float | None = None
) -> Report:
    """Run every check through ``client`` and store the accessible divisions in ``vault``.

    ``deadline_seconds``: how long the checks may wait (for the minute's rate limit, another
    worker's token refresh); a check that would wait longer fails at once, saying when to test
    again. Without it, the client's default deadline for a call applies to each call.
    """
    deadline = None if deadline_seconds is None else client.clock.now() + deadline_seconds
    credential = vault.get(client.credential_id)
    report = Report(credential.id, credential.connector_name)
    before = credential.version
    try:
        credential = client.auth.current(deadline=deadline)
    except ExactConnectorError as error:
        report.checks.append(_failed("token", error))
        return report
    refreshed = credential.version != before
    left = (credential.access_token_expires_at or 0) - client.clock.now()
    report.checks.append(
        Check(
            "token",
            True,
            "A new access token was obtained." if refreshed else "The access token is valid.",
            detail={"refreshed": refreshed, "seconds_left": max(0, round(left))},
        )
    )
    current_division = _check_user(client, report, deadline)
    if current_division is not None:
        _check_divisions(client, vault, report, current_division, deadline)
    _check_rate_limit(client, report)
    report.checks.append(_refresh_token_age(client, credential.refresh_token_issued_at))
    return report


def load_divisions(client: ExactClient, vault: Vault, *, deadline_seconds: float = 10.0) -> bool:
    """Store the accessible divisions right after sign-in; False (and nothing stored) on failure.

    Test Connect does the same and reports why it failed; sign-in only wants the list, so that
    forms and actions can use the credential before anyone runs Test Connect. So it does not
    wait out a minute whose calls are used (a person is waiting on the sign-in's answer): past
    ``deadline_seconds`` it gives up and Test Connect loads them.
    """
    deadline = client.clock.now() + deadline_seconds
    credential = vault.get(client.credential_id)
    scratch = Report(credential.id, credential.connector_name)
    current = _check_user(client, scratch, deadline)
    if current is not None:
        _check_divisions(client, vault, scratch, current, deadline)
    return bool(scratch.checks) and all(check.ok for check in scratch.checks)


def _check_user(client: ExactClient, report: Report, deadline: float | None) -> int | None:
    endpoint = catalog().lookup("current/Me")
    try:
        url = client.url(endpoint, None, params={"$select": "CurrentDivision,FullName,UserID"})
        answer = client.request("GET", url, endpoint=endpoint, division=None, deadline=deadline)
        me = unwrap_record(read_json(answer))
        division = me.get("CurrentDivision")
        if not isinstance(division, int):
            raise ExactError("current/Me did not name a current division.")
    except ExactConnectorError as error:
        report.checks.append(_failed("user", error))
        return None
    report.checks.append(
        Check(
            "user",
            True,
            f"Signed in as {me.get('FullName') or 'an Exact Online user'}.",
            detail={
                "user": me.get("FullName"),
                "user_id": me.get("UserID"),
                "current_division": division,
            },
        )
    )
    return division


def _check_divisions(
    client: ExactClient, vault: Vault, report: Report, current: int, deadline: float | None
) -> None:
    endpoint = catalog().lookup("system/Divisions")
    try:
        url = client.url(endpoint, current, params={"$select": "Code,Description"})
        rows = list(Pager(client, endpoint, current, url, deadline=deadline))
        divisions = sorted({row["Code"] for row in rows if isinstance(row.get("Code"), int)})
        if not divisions:
            raise ExactError("system/Divisions listed no division this connection may use.")
        default = current if current in divisions else divisions[0]
        vault.set_divisions(client.credential_id, divisions, default)
    except ExactConnectorError as error:
        report.checks.append(_failed("divisions", error))
        return
    names = {
        row["Code"]: row.get("Description") for row in rows if isinstance(row.get("Code"), int)
    }
    report.checks.append(
        Check(
            "divisions",
            True,
            f"{len(divisions)} division(s) accessible; default {default}.",
            detail={
                "allowed": divisions,
                "default": default,
                "names": {str(code): names.get(code) for code in divisions},
            },
        )
    )


def _check_rate_limit(client: ExactClient, report: Report) -> None:
    headers = {k.lower(): v for k, v in client.stats.rate_limit.items()}
    minutely = headers.get("x-ratelimit-minutely-remaining")
    daily = headers.get("x-ratelimit-remaining")
    if minutely is None and daily is None:
        report.checks.append(
            Check("rate_limit", True, "No rate-limit information was sent.", detail={})
        )
        return
    detail = {
        "minutely_remaining": _int(minutely),
        "minutely_limit": _int(headers.get("x-ratelimit-minutely-limit")),
        "daily_remaining": _int(daily),
        "daily_limit": _int(headers.get("x-ratelimit-limit")),
    }
    low = detail["daily_remaining"] is not None and detail["daily_remaining"] < 100
    report.checks.append(
        Check(
            "rate_limit",
            True,
            f"{detail['daily_remaining']} of {detail['daily_limit']} calls left today.",
            detail=detail,
            warning="Fewer than 100 API calls are left today for this division." if low else None,
        )
    )


def _refresh_token_age(client: ExactClient, issued_at: float | None) -> Check:
    if issued_at is None:
        return Check("refresh_token_age", True, "The refresh token's age is unknown.")
    policy = client.auth.policy
    age_days = max(0.0, (client.clock.now() - issued_at) / _DAY)
    left = policy.refresh_idle_ttl / _DAY - age_days
    detail = {"age_days": round(age_days, 2), "days_left": round(left, 2)}
    if left <= 0:
        return Check(
            "refresh_token_age",
            False,
            "The refresh token has expired from disuse.",
            detail=detail,
            remediation="Sign in again (reauthorize the credential).",
            code="reauth_required",
            category="config",
        )
    warning = None
    if left < policy.refresh_warning / _DAY:
        warning = f"The refresh token expires in {left:.1f} days unless the connection is used."
    return Check("refresh_token_age", True, f"{left:.1f} days until expiry.", detail, warning)


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None
