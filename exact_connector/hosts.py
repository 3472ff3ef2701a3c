"""Where requests may go: the Exact Online regional hosts, and the sandbox when allowed.

A Server URL is parsed strictly and reduced to a canonical origin (``https://start.exactonline.nl``).
Auth, token and API URLs are all derived from that one origin, and every outgoing request is checked
against it before it is sent (see :func:`check_request_url`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from dataclasses import dataclass
from functools import cache

import httpx

from exact_connector import redaction
from exact_connector.exceptions import ConfigError, HostNotAllowed, InvalidServerUrl
from exact_connector.manifest import load_manifest

__all__ = [
    "PROXY_ENV",
    "Origin",
    "check_request_url",
    "configured_proxy",
    "default_transport",
    "parse_server_url",
    "regional_hosts",
    "sandbox_allowed_by_env",
]


@cache
def regional_hosts() -> frozenset[str]:
    """The host names of the manifest's ``server_urls``: Exact Online's regional hosts."""
    return frozenset(httpx.URL(server.url).host for server in load_manifest().server_urls)


_LOOPBACK_NAMES = ("localhost",)
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
        """An absolute URL on this origin; ``path`` must already be built from validated parts."""
        return httpx.URL(scheme=self.scheme, host=self.host, port=self.port, path=path)


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


def default_transport() -> httpx.BaseTransport:
    """A new connection pool on the process's one verified TLS context, through the configured
    proxy if there is one (never the environment's)."""
    return httpx.HTTPTransport(verify=_tls_context(), trust_env=False, proxy=configured_proxy())


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
