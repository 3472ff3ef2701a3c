"""H1-H4: the Server URL allow-list and the per-request host check."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exact_connector.exceptions import HostNotAllowed, InvalidServerUrl
from exact_connector.urls import Origin, check_request_url, parse_server_url, regional_hosts


@pytest.mark.parametrize("host", sorted(regional_hosts()))
@pytest.mark.parametrize("spelling", ["https://{h}", "https://{h}/", "HTTPS://{H}"])
def test_h1_every_region_in_every_spelling_normalises(host: str, spelling: str) -> None:
    """Trailing slash and letter case do not matter; the origin is canonical."""
    origin = parse_server_url(spelling.format(h=host, H=host.upper()))
    assert origin == Origin("https", host)
    assert origin.url == f"https://{host}"


H2_REJECTS = [
    "http://start.exactonline.nl",
    "https://u:p@start.exactonline.nl",
    "https://start.exactonline.nl.evil.com",
    "https://evil.com/start.exactonline.nl",
    "https://start.exactonline.nl:8443",
    "https://start.exactonline.nl/api",
    "https://start.exactonline.nl/?x=1",
    "https://start.exactonline.nl/#frag",
    "https://127.0.0.1",
    "https://[::1]",
    "https://169.254.169.254",
    "https://0x7f.1",
    "https://start.exactonline.nl.",
    "https://xn--start-exactonline-xyz.nl",
    "https:\\\\evil.com",
    "https://start.exactonline.nl\r\nX: y",
    " https://start.exactonline.nl",
    "",
    "https://" + "a" * 4096 + ".nl",
    "ftp://start.exactonline.nl",
    "//start.exactonline.nl",
]


@pytest.mark.parametrize("value", H2_REJECTS, ids=lambda v: repr(v[:40]))
def test_h2_anything_else_is_refused_without_echo(value: str) -> None:
    """Every lookalike, extra part or odd character is INVALID_SERVER_URL; userinfo never echoed."""
    with pytest.raises(InvalidServerUrl) as caught:
        parse_server_url(value)
    assert caught.value.code == "invalid_server_url"
    assert "u:p" not in caught.value.message
    assert "u:p" not in str(caught.value.details)


def test_loopback_sandbox_only_when_allowed() -> None:
    """The sandbox on loopback needs an explicit allowance; other private hosts never pass."""
    with pytest.raises(InvalidServerUrl):
        parse_server_url("http://127.0.0.1:8080")
    assert parse_server_url("http://127.0.0.1:8080", allow_sandbox=True) == Origin(
        "http", "127.0.0.1", 8080
    )
    with pytest.raises(InvalidServerUrl):
        parse_server_url("http://10.0.0.1:8080", allow_sandbox=True)
    with pytest.raises(InvalidServerUrl):
        parse_server_url("http://127.0.0.1", allow_sandbox=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/api/v1/1/crm/Accounts",
        "http://start.exactonline.nl/api/v1/1/crm/Accounts",
        "https://start.exactonline.nl:444/api/v1/1/crm/Accounts",
        "https://start.exactonline.nl/other",
        "https://user:pw@start.exactonline.nl/api/v1",
    ],
)
def test_h4_request_check_blocks_anything_off_origin(url: str) -> None:
    """An internally built URL on another host, scheme, port or path is blocked before sending."""
    with pytest.raises(HostNotAllowed):
        check_request_url(httpx.URL(url), Origin("https", "start.exactonline.nl"))


def test_the_seven_regions_come_from_the_manifest() -> None:
    """NL, BE, DE, UK, US, ES and FR: the allow-list is the manifest's server_urls."""
    assert regional_hosts() == {
        f"start.exactonline.{tld}" for tld in ("nl", "be", "de", "co.uk", "com", "es", "fr")
    }


def test_request_check_passes_the_origin_api() -> None:
    """The credential's own API and token URLs pass."""
    origin = Origin("https", "start.exactonline.nl")
    check_request_url(httpx.URL("https://start.exactonline.nl/api/v1/1/crm/Accounts"), origin)
    check_request_url(origin.join("/api/oauth2/token"), origin)


#: Characters of record keys and endpoint paths, the ones URLs treat specially, and any other.
_PATH_CHARACTERS = st.sampled_from("aZ09/()'=,.-_~?#%\\ \t\x1f\x7fé") | st.characters(
    exclude_categories=["Cs"]  # lone surrogates: refused with the input, before any URL
)

#: Text of the characters a path keeps unescaped, dot segments among them.
_KEPT_TEXT = st.lists(
    st.sampled_from([*"aZ09/()'=,.-_~!$&*+;:@", "/./", "/../", "/.", "/.."]), max_size=20
).map("".join)


@pytest.mark.parametrize(
    "origin", [Origin("https", "start.exactonline.nl"), Origin("http", "127.0.0.1", 8080)]
)
@settings(max_examples=300, deadline=None)
@given(
    path=(st.text(_PATH_CHARACTERS, max_size=40) | _KEPT_TEXT).map(lambda text: "/api/v1/" + text)
)
def test_a_joined_url_is_the_component_forms_url(origin: Origin, path: str) -> None:
    """``Origin.join`` sets a path httpx keeps as it is into the parsed origin, and parses another
    plain path as text (both fast); every path gives the URL the component form gives, part for
    part (or the same refusal), so a ``?``, ``#``, dot segment or control character can never
    become a query, fragment or other path."""
    assert _parts(lambda: origin.join(path)) == _parts(
        lambda: httpx.URL(scheme=origin.scheme, host=origin.host, port=origin.port, path=path)
    )


def _parts(make: Callable[[], httpx.URL]) -> tuple[str, ...]:
    """A URL's text and parts, or the error making it raised."""
    try:
        url = make()
    except httpx.InvalidURL as error:
        return ("invalid", str(error))
    parts = url._uri_reference  # what httpx builds requests from
    return (str(url), url.path, url.query.decode(), url.fragment, repr(url.raw_path), repr(parts))
