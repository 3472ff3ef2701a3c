"""JSON only when asked for: ``Accept`` and ``Content-Type`` as Exact's WCF Data Services read them.

Exact answers JSON only to ``Accept: application/json``; without it (no header, ``*/*``,
``application/atom+xml``, ``application/xml``) it answers XML/Atom (API-FACTS §4 "Headers":
``Accept: application/json (otherwise XML/Atom)``; KB FAQ: JSON or XML selected by header). The
sandbox does the same: it builds its JSON answer and, unless JSON was asked for, writes it as the
OData v2 Atom that WCF Data Services produces — a ``<feed>`` of ``<entry>`` elements with
``<m:properties>``, ``<link rel="next">``, ``<m:count>``, deferred and inline (``$expand``) links,
and errors as ``<m:error><m:code/><m:message xml:lang=""/></m:error>``. Edm types come from the
catalog, dates are ISO text. An ``Accept`` naming only other types (``text/plain``) answers 415.
``/$count`` is the one plain-text answer: it needs an ``Accept`` that admits ``text/plain`` (none,
``*/*``), since the facts say to send no Accept header for it; ``application/json`` alone is 415.

On POST and PUT the body is read by its ``Content-Type``: ``application/json`` as JSON,
``application/atom+xml`` or ``application/xml`` as an Atom entry whose ``m:properties`` become the
same values a JSON body would carry; none or anything else answers 415 "Unsupported media type
requested." (the WCF Data Services answer; the facts record no status for it, so this is the
sandbox's choice). A DOCTYPE is refused, as WCF prohibits DTDs.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from exact_connector.catalog import Endpoint, catalog
from exact_connector.odata import DATE_PATTERN
from exact_connector.sandbox.wire import SandboxError

__all__ = [
    "BAD_BODY",
    "accepts_json",
    "as_atom",
    "check_accept",
    "count_acceptable",
    "read_payload",
]

BAD_BODY = (
    "Error processing request stream. The request should be a valid top-level resource object."
)
_ATOM = "http://www.w3.org/2005/Atom"
_D = "http://schemas.microsoft.com/ado/2007/08/dataservices"
_M = _D + "/metadata"
_RELATED = _D + "/related/"
_SCHEME = _D + "/scheme"
_XML_TYPES = frozenset({"application/atom+xml", "application/xml", "text/xml"})
_WILDCARDS = frozenset({"*/*", "application/*"})
_UNSUPPORTED = "Unsupported media type requested."
_ENDPOINT_IN_URI = re.compile(r"/api/v1/(?:beta/)?(?:[0-9]+/)?([^(?]+)")
_NUMBERS = {"Edm.Byte", "Edm.Int16", "Edm.Int32", "Edm.Int64"}
_DECIMALS = {"Edm.Double", "Edm.Decimal", "Edm.Single"}

ET.register_namespace("", _ATOM)
ET.register_namespace("d", _D)
ET.register_namespace("m", _M)


def _media_ranges(header: str | None) -> list[str]:
    ranges = []
    for part in (header or "").split(","):
        kind, *params = (piece.strip().lower() for piece in part.split(";"))
        if kind and not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00") for p in params):
            ranges.append(kind)
    return ranges


def accepts_json(request: httpx.Request) -> bool:
    """True for JSON, False for Atom (also when ``Accept`` names neither: :func:`check_accept`)."""
    if request.url.params.get("$format") == "json":
        return True
    return "application/json" in _media_ranges(request.headers.get("accept"))


def check_accept(request: httpx.Request) -> None:
    """415 when ``Accept`` names neither JSON nor Atom/XML nor a wildcard."""
    ranges = _media_ranges(request.headers.get("accept"))
    acceptable = _WILDCARDS | _XML_TYPES | {"application/json"}
    if ranges and not acceptable & set(ranges) and not accepts_json(request):
        raise SandboxError(415, _UNSUPPORTED)


def count_acceptable(request: httpx.Request) -> None:
    """``/$count`` answers ``text/plain``: refuse an ``Accept`` that does not admit it."""
    ranges = _media_ranges(request.headers.get("accept"))
    if ranges and not {"text/plain", "text/*", "*/*"} & set(ranges):
        raise SandboxError(415, _UNSUPPORTED)


# -- reading bodies ------------------------------------------------------------------------------


def read_payload(request: httpx.Request, endpoint: Endpoint) -> Any:
    """The body of a POST or PUT as JSON values, by its ``Content-Type``."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = request.content
    if kind == "application/json":
        try:
            return json.loads(body) if body.strip() else None
        except ValueError:
            raise SandboxError(400, BAD_BODY) from None
    if kind in ("application/atom+xml", "application/xml"):
        return _entry_values(body, endpoint)
    raise SandboxError(415, _UNSUPPORTED)


def _entry_values(body: bytes, endpoint: Endpoint) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SandboxError(400, BAD_BODY) from None
    if "<!DOCTYPE" in text.upper():  # no DTD, so no entity can be declared: nothing expands
        raise SandboxError(400, BAD_BODY)
    try:
        root = ET.fromstring(text)  # noqa: S314 - DTDs refused above
    except ET.ParseError:
        raise SandboxError(400, BAD_BODY) from None
    properties = root.find(f"{{{_ATOM}}}content/{{{_M}}}properties")
    if root.tag != f"{{{_ATOM}}}entry" or properties is None:
        raise SandboxError(400, BAD_BODY)
    values: dict[str, Any] = {}
    for element in properties:
        name = element.tag.removeprefix(f"{{{_D}}}")
        field = endpoint.field(name)
        edm = element.get(f"{{{_M}}}type") or (field.type if field is not None else "")
        values[name] = _typed(element, edm)
    return values


def _typed(element: ET.Element, edm: str) -> Any:
    if element.get(f"{{{_M}}}null") == "true":
        return None
    text = element.text or ""
    try:
        if edm in _NUMBERS:
            return int(text)
        if edm in _DECIMALS:
            return float(text)
    except ValueError:
        return text  # the write check names the property and the type it wanted
    if edm == "Edm.Boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


# -- writing Atom --------------------------------------------------------------------------------


def as_atom(response: httpx.Response, now: float) -> httpx.Response:
    """The same answer as Atom/XML; answers that are not JSON (empty, text) pass unchanged."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return response
    payload = json.loads(response.content)
    updated = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if "error" in payload:
        root, kind = _error(payload["error"]), "application/xml"
    else:
        root, kind = _document(payload.get("d"), updated)
    dropped = ("content-length", "content-type")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in dropped}
    headers["Content-Type"] = kind + ";charset=utf-8"
    content = b'<?xml version="1.0" encoding="utf-8" standalone="yes"?>' + ET.tostring(root)
    return httpx.Response(
        response.status_code, headers=headers, content=content, extensions=response.extensions
    )


def _error(error: Mapping[str, Any]) -> ET.Element:
    root = ET.Element(f"{{{_M}}}error")
    ET.SubElement(root, f"{{{_M}}}code").text = error.get("code") or None
    message = error.get("message") or {}
    element = ET.SubElement(root, f"{{{_M}}}message")
    element.set("{http://www.w3.org/XML/1998/namespace}lang", message.get("lang", ""))
    element.text = message.get("value", "")
    return root


def _document(body: Any, updated: str) -> tuple[ET.Element, str]:
    if isinstance(body, list):
        return _feed(body, None, None, updated), "application/atom+xml;type=feed"
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        feed = _feed(body["results"], body.get("__next"), body.get("__count"), updated)
        return feed, "application/atom+xml;type=feed"
    if isinstance(body, dict) and "__metadata" in body:
        return _entry(body, updated), "application/atom+xml;type=entry"
    name, value = next(iter(body.items())) if isinstance(body, dict) and body else ("d", None)
    element = ET.Element(f"{{{_D}}}{name}")  # a function's single result
    _set_value(element, value, "Edm.Boolean" if isinstance(value, bool) else "")
    return element, "application/xml"


def _feed(records: list[Any], next_link: Any, count: Any, updated: str) -> ET.Element:
    feed = ET.Element(f"{{{_ATOM}}}feed")
    ET.SubElement(feed, f"{{{_ATOM}}}updated").text = updated
    if count is not None:
        ET.SubElement(feed, f"{{{_M}}}count").text = str(count)
    for record in records:
        feed.append(_entry(record, updated))
    if isinstance(next_link, str):
        ET.SubElement(feed, f"{{{_ATOM}}}link", rel="next", href=next_link)
    return feed


def _entry(record: Mapping[str, Any], updated: str) -> ET.Element:
    metadata = record.get("__metadata") or {}
    uri = str(metadata.get("uri", ""))
    endpoint = _endpoint_of(uri)
    entry = ET.Element(f"{{{_ATOM}}}entry")
    ET.SubElement(entry, f"{{{_ATOM}}}id").text = uri
    ET.SubElement(entry, f"{{{_ATOM}}}category", term=str(metadata.get("type", "")), scheme=_SCHEME)
    ET.SubElement(entry, f"{{{_ATOM}}}link", rel="edit", href=uri)
    ET.SubElement(entry, f"{{{_ATOM}}}updated").text = updated
    properties = ET.Element(f"{{{_M}}}properties")
    for name, value in record.items():
        if name == "__metadata":
            continue
        if isinstance(value, dict) and ("__deferred" in value or "results" in value):
            link = ET.SubElement(
                entry,
                f"{{{_ATOM}}}link",
                rel=_RELATED + name,
                type="application/atom+xml;type=feed",
                title=name,
                href=f"{uri}/{name}",
            )
            if "results" in value:
                inline = ET.SubElement(link, f"{{{_M}}}inline")
                inline.append(_feed(value["results"], None, None, updated))
            continue
        field = endpoint.field(name) if endpoint is not None else None
        element = ET.SubElement(properties, f"{{{_D}}}{name}")
        _set_value(element, value, field.type if field is not None else "")
    content = ET.SubElement(entry, f"{{{_ATOM}}}content", type="application/xml")
    content.append(properties)
    return entry


def _endpoint_of(uri: str) -> Endpoint | None:
    match = _ENDPOINT_IN_URI.search(uri)
    return catalog().get(match.group(1)) if match else None


def _set_value(element: ET.Element, value: Any, edm: str) -> None:
    if edm and edm.startswith("Edm.") and edm != "Edm.String":
        element.set(f"{{{_M}}}type", edm)
    if value is None:
        element.set(f"{{{_M}}}null", "true")
        return
    if isinstance(value, bool):
        element.text = "true" if value else "false"
        return
    date = DATE_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if date is not None:
        moment = datetime.fromtimestamp(int(date.group(1)) / 1000, UTC).replace(tzinfo=None)
        element.text = moment.isoformat(timespec="milliseconds")
        return
    element.text = str(value)
