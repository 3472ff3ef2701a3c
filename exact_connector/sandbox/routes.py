"""Where an API request points: ``/api/v1/[beta/][division/]service/Endpoint[(key)][/tail]``.

A path becomes a :class:`Route` (division, endpoint name, key literal, and ``$count`` or a
navigation property), and a route becomes a catalog endpoint, or the 404 Exact answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exact_connector.catalog import Endpoint, catalog
from exact_connector.sandbox.wire import SandboxError

__all__ = ["Route", "resolve", "route"]

_PATH = re.compile(r"/api/v1/(?:(?P<beta>beta)/)?(?:(?P<division>[0-9]{1,10})/)?(?P<rest>.+)")
_KEYED = re.compile(r"(?P<name>[^()]+)\((?P<key>.*)\)(?:/(?P<tail>[A-Za-z]+))?")


@dataclass(frozen=True)
class Route:
    """What an API path names: division, endpoint, key literal, and ``$count`` or a navigation."""

    division: int | None
    beta: bool
    name: str
    key: str | None = None
    tail: str | None = None


def route(path: str) -> Route | None:
    """Parse ``/api/v1/[beta/][division/]service/Endpoint[(key)][/tail]``; None if it is not one."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    rest, key, tail = match["rest"], None, None
    keyed = _KEYED.fullmatch(rest)
    if keyed is not None:
        rest, key, tail = keyed["name"], keyed["key"], keyed["tail"]
    elif rest.endswith("/$count"):
        rest, tail = rest[: -len("/$count")], "$count"
    division = int(match["division"]) if match["division"] else None
    return Route(division, bool(match["beta"]), rest, key, tail)


def resolve(where: Route) -> Endpoint:
    """The catalog endpoint a route names, or 404 as Exact answers an unknown resource."""
    endpoint = catalog().get(where.name)
    if (
        endpoint is None
        or endpoint.beta != where.beta
        or endpoint.division_in_path != (where.division is not None)
    ):
        segment = where.name.rsplit("/", 1)[-1]
        raise SandboxError(404, f"Resource not found for the segment '{segment}'.")
    return endpoint
