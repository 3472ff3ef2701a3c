"""Dry runs: the first request an action would send, built exactly as it would be, not sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exact_connector.client import ExactClient

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from exact_connector.catalog import Endpoint
    from exact_connector.limits import RateGovernor

__all__ = ["PlanningClient", "first_request"]


class _Planned(Exception):
    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__("planned")
        self.request = request


class PlanningClient(ExactClient):
    """Builds requests exactly like :class:`ExactClient` and stops before the first is sent.

    ``held_by``: the governor whose error budget the run would meet (its own, given to this
    client, is a fresh one: a dry run reserves nothing); a call it holds is refused here too.
    """

    held_by: RateGovernor | None = None

    def _before_sending(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        json: Any,
        endpoint: Endpoint,
        division: int | None,
    ) -> None:
        if self.held_by is not None and division is not None and endpoint.division_in_path:
            self.held_by.check_error_budget(self.client_id, division, endpoint.id)
        masked = {"Accept": "application/json", "Authorization": "Bearer ********", **headers}
        raise _Planned(
            {"method": method, "url": str(url), "headers": masked, "json": json, "sent": False}
        )


def first_request(client: PlanningClient, run: Callable[[], object]) -> dict[str, Any]:
    """What ``run`` (an action using ``client``) would send first: method, URL, headers, body."""
    try:
        run()
    except _Planned as planned:
        return planned.request
    finally:
        client.close()
    raise AssertionError("every action sends a request")  # pragma: no cover
