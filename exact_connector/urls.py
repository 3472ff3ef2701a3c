"""URLs: where requests may go, and what may go into them.

Where: the Exact Online regional hosts, and the sandbox when allowed. A Server URL is parsed
strictly and reduced to a canonical origin (``https://start.exactonline.nl``). Auth, token and API
URLs are all derived from that one origin, and every outgoing request is checked against it before
it is sent (see :func:`check_request_url`).

What: the division segment, key literals, query options and bodies.
:class:`~exact_connector.client.ExactClient` builds every URL and body through these checks, so a
value that passed no schema (an engine calling the client directly, say) still cannot change a
URL's structure, crash the JSON encoder, or overwhelm Exact. Exact's own size limits (API-FACTS §3
"Sizes": a body of at most 10 MB, a URL of at most 6,000 characters after encoding) are refused
here, before sending, naming the input that made the request too large.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import httpx

from exact_connector import redaction
from exact_connector.exceptions import ConfigError, HostNotAllowed, InputError, InvalidServerUrl
from exact_connector.manifest import load_manifest
from exact_connector.odata import KEY_LITERAL
from exact_connector.validation import MAX_DEPTH, unsendable

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_BODY_DEPTH",
    "MAX_URL_LENGTH",
    "PROXY_ENV",
    "Origin",
    "check_request_url",
    "checked_key",
    "checked_length",
    "configured_proxy",
    "default_transport",
    "division_segment",
    "encode_body",
    "parse_server_url",
    "query_options",
    "regional_hosts",
    "sandbox_allowed_by_env",
]


@cache
def regional_hosts() -> frozenset[str]:
    """The host names of the manifest's ``server_urls``: Exact Online's regional hosts."""
    return frozenset(httpx.URL(server.url).host for server in load_manifest().server_urls)


_LOOPBACK_NAMES = ("localhost",)
#: A path of printable ASCII without ``?``, ``#``, ``%`` or ``\\``: text that parses as a path
#: alone, to the same URL as the component form gives.
_PLAIN_PATH = re.compile(r'/[!"$&->@-\[\]-~]*', re.ASCII)
#: A path of the characters a URL path keeps as they are (RFC 3986's unreserved, sub-delims, ":"
#: and "@"): with no dot segment, httpx parses it to itself.
_CANONICAL_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*", re.ASCII)
_MAX_URL = 200
_URL_SHAPE = re.compile(
    r"(https?)://([A-Za-z0-9.\-\[\]:]+?)(?::([0-9]{1,5}))?/?", re.ASCII | re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Origin:
    """A validated scheme + host (+ port for the loopback sandbox)."""

    scheme: str
    host: str
    port: int | None = None

    @property
    def url(self) -> str:
        """The origin as text, no trailing slash."""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{self.host}{port}"

    @property
    def is_sandbox(self) -> bool:
        """Whether this origin is a loopback sandbox rather than Exact Online."""
        return self.host not in regional_hosts()

    def join(self, path: str) -> httpx.URL:
        """An absolute URL on this origin; ``path`` must already be built from validated parts.

        A path httpx would parse to itself is set into the origin's parsed URL (parsing the whole
        URL again was 5% of a step); another plain path is parsed as text, as any URL httpx is
        given (its per-component form checks every character in Python, several times slower);
        one with a character that text would read as a query, fragment or control goes through
        the component form, which escapes it.
        """
        if _CANONICAL_PATH.fullmatch(path) and "/." not in path:
            url = httpx.URL.__new__(httpx.URL)
            # httpx (pinned to 0.28) keeps a URL's parts in this named tuple.
            url._uri_reference = _parsed(self)._uri_reference._replace(path=path)
            return url
        if _PLAIN_PATH.fullmatch(path):
            return httpx.URL(self.url + path)
        return httpx.URL(scheme=self.scheme, host=self.host, port=self.port, path=path)


@cache
def _parsed(origin: Origin) -> httpx.URL:
    return httpx.URL(origin.url)


@cache
def _tls_context() -> ssl.SSLContext:
    """Verified TLS, built once per process: loading the CA bundle costs ~30 ms.

    ``trust_env=False``: SSL_CERT_FILE in the environment cannot widen what is trusted.
    """
    return httpx.create_ssl_context(trust_env=False)


PROXY_ENV = "EXACT_CONNECTOR_PROXY"
_PROXY_SHAPE = re.compile(r"https?://(?:[^@/\s]+@)?[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}/?", re.ASCII)


def configured_proxy() -> str | None:
    """The proxy named by ``EXACT_CONNECTOR_PROXY`` (``http://host:port``), or None.

    The standard ``HTTPS_PROXY`` variables are ignored on purpose (``trust_env=False``): a stray
    variable must not route bearer tokens through another host. This one variable is the explicit
    opt-in; its value is never echoed, as it may hold the proxy's password.
    """
    value = os.environ.get(PROXY_ENV, "")
    if not value:
        return None
    if not _PROXY_SHAPE.fullmatch(value):
        raise ConfigError(
            f"{PROXY_ENV} must be http://host:port or https://host:port.",
            details={"variable": PROXY_ENV},
        )
    if "@" in value:
        redaction.remember(value.split("://", 1)[1].rsplit("@", 1)[0])
    return value


def default_transport(origin: Origin) -> httpx.BaseTransport:
    """A new connection pool for ``origin``, through the configured proxy if there is one (never
    the environment's), on the process's one verified TLS context.

    Without a proxy, a plain ``http://`` origin (only ever the loopback sandbox) gets a context
    that trusts no certificate at all, so the CA bundle is loaded only where TLS is spoken: a CLI
    step against the sandbox never pays for it. Every request a pool sends goes to its own origin
    (the request check refuses any other), so routing can never weaken verification.
    """
    proxy = configured_proxy()
    plain = origin.scheme == "http" and proxy is None
    context = _no_tls_context() if plain else _tls_context()
    return httpx.HTTPTransport(verify=context, trust_env=False, proxy=proxy)


def _no_tls_context() -> ssl.SSLContext:
    """A client TLS context that verifies and trusts nothing: any handshake through it fails."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def sandbox_allowed_by_env() -> bool:
    """``EXACT_CONNECTOR_ALLOW_SANDBOX=1`` lets credentials point at a loopback sandbox."""
    return os.environ.get("EXACT_CONNECTOR_ALLOW_SANDBOX", "") == "1"


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_server_url(value: object, *, allow_sandbox: bool = False) -> Origin:
    """The canonical origin of a Server URL, or :class:`InvalidServerUrl` saying why.

    Accepted: ``https://<regional host>`` with an optional trailing slash, any letter case. With
    ``allow_sandbox``, also ``http://127.0.0.1:<port>`` (or another loopback address). Rejected:
    other schemes, userinfo, ports, paths, queries, fragments, IP literals, lookalikes, whitespace.
    The rejected value is never echoed (it may hold a password in its userinfo).
    """

    def refuse(reason: str) -> InvalidServerUrl:
        return InvalidServerUrl(
            f"The Server URL is not accepted: {reason}.",
            details={"reason": reason},
        )

    if not isinstance(value, str) or not value:
        raise refuse("it is empty")
    if len(value) > _MAX_URL:
        raise refuse("it is too long")
    match = _URL_SHAPE.fullmatch(value)
    if match is None:
        raise refuse("it must be just a scheme and a host, like https://start.exactonline.nl")
    scheme, host, port_text = match.group(1).lower(), match.group(2).lower(), match.group(3)
    if host in regional_hosts():
        if scheme != "https":
            raise refuse("Exact Online is only reached over https")
        if port_text is not None:
            raise refuse("a port is not allowed")
        return Origin("https", host)
    if allow_sandbox and _is_loopback(host) and port_text is not None:
        port = int(port_text)
        if not 0 < port < 65536:
            raise refuse("the port is out of range")
        return Origin(scheme, host, port)
    if _is_loopback(host):
        raise refuse(
            "the sandbox is only reachable when allowed: set EXACT_CONNECTOR_ALLOW_SANDBOX=1 "
            "(or pass allow_sandbox=True)"
        )
    raise refuse("the host is not one of Exact Online's regional hosts")


def check_request_url(url: httpx.URL, origin: Origin) -> None:
    """Refuse to send anything that is not on ``origin`` under ``/api/`` (defence in depth)."""
    same_origin = (
        url.scheme == origin.scheme
        and url.host == origin.host
        and (url.port or None) == origin.port
        and not url.userinfo
    )
    if not same_origin or not url.path.startswith("/api/") or "/../" in url.path:
        raise HostNotAllowed(
            "A request to a host or path outside the configured Exact Online region was blocked.",
            details={"host": url.host},
        )


# --- what goes into a request ---------------------------------------------------------------

MAX_BODY_BYTES = 10_000_000  # Exact's "10 MB", read as the smaller (decimal) number of bytes
MAX_URL_LENGTH = 6_000  # characters of the whole URL, after encoding
MAX_BODY_DEPTH = MAX_DEPTH  # Exact's deepest documents (orders with lines) are three levels deep
_DIVISION = re.compile(r"[0-9]{1,10}", re.ASCII)
_MAX_DIVISION = 2**31 - 1
#: Query options the client sends, each with the check its value must pass.
_QUERY_OPTIONS: dict[str, re.Pattern[str]] = {
    "$select": re.compile(r"[A-Za-z0-9_,/]{1,4000}", re.ASCII),
    "$expand": re.compile(r"[A-Za-z0-9_,/]{1,1000}", re.ASCII),
    "$orderby": re.compile(r"[A-Za-z0-9_, /]{1,1000}", re.ASCII),
    "$filter": re.compile(r"[^\x00-\x1f\x7f]{1,4000}"),
    "$top": re.compile(r"[1-9][0-9]{0,3}|10000", re.ASCII),
    "$skip": re.compile(r"0|[1-9][0-9]{0,5}", re.ASCII),
    "$skiptoken": re.compile(r"[^\x00-\x1f\x7f]{1,400}"),
    "$inlinecount": re.compile(r"allpages|none", re.ASCII),
}
#: Where a query option comes from in an action's input, to name it when the URL is too long.
_INPUT_PATHS = {"$filter": "$.filter", "$select": "$.select", "$orderby": "$.order_by"}


def division_segment(division: object) -> str:
    """ASCII digits in range; ``int()`` would also take full-width digits, ' 12 ', '1_000'."""
    if isinstance(division, bool) or not isinstance(division, int | str):
        raise InputError.at("$.division", "type", "expected a division number")
    text = str(division) if isinstance(division, int) else division
    if not _DIVISION.fullmatch(text) or not 0 < int(text) <= _MAX_DIVISION:
        raise InputError.at("$.division", "format", "expected a division number (digits 0-9)")
    return str(int(text))


def checked_key(key_literal: object) -> str:
    """A key literal exactly as :func:`~exact_connector.odata.key_literal` renders one."""
    if not isinstance(key_literal, str) or not KEY_LITERAL.fullmatch(key_literal):
        raise InputError.at("$.id", "format", "not a key this endpoint can be addressed by")
    return key_literal


def query_options(params: Mapping[str, str]) -> dict[str, str]:
    """The query options, each one this client sends and with a value of the expected shape."""
    for name, value in params.items():
        check = _QUERY_OPTIONS.get(name)
        path = f"$.params.{name.lstrip('$')}" if isinstance(name, str) else "$.params"
        if check is None:
            raise InputError.at(path, "unknown_option", "not a query option this client sends")
        if not isinstance(value, str) or not check.fullmatch(value):
            raise InputError.at(path, "format", "the value has a shape this option does not take")
    return dict(params)


def checked_length(url: str, params: Mapping[str, str] | None = None) -> str:
    """The URL, if Exact accepts its length; else the input that made it long is named."""
    if len(url) <= MAX_URL_LENGTH:
        return url
    longest = max(params or {}, key=lambda name: len(quote(str((params or {})[name]))), default="")
    path = _INPUT_PATHS.get(longest, f"$.params.{longest.lstrip('$')}" if longest else "$.id")
    raise InputError.at(
        path,
        "url_length",
        f"makes the request URL {len(url)} characters long; Exact Online accepts at most "
        f"{MAX_URL_LENGTH}, so shorten it or split the step",
    )


def encode_body(body: Any) -> bytes:
    """JSON for the wire, refusing what would crash the encoder or overwhelm Exact."""
    problems = unsendable(body, "$.data", MAX_BODY_DEPTH)
    if problems:
        raise InputError(f"Invalid value at {problems[0]['path']}.", errors=problems)
    try:
        text = jsonlib.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InputError.at("$.data", "type", "holds a value JSON cannot carry") from None
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_BODY_BYTES:
        raise InputError.at("$.data", "size", "larger than the 10 MB Exact Online accepts")
    return encoded
