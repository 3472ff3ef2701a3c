"""The built front end (``app.js``, ``app.css``) and the HTML page that loads it.

A wheel carries the bundle in ``exact_connector/ui/static`` (the build hook runs npm when Node.js
is present); a source checkout uses ``frontend/dist`` after ``npm run build``. The bundle is never
committed. Without it, the page says how to build it instead of failing.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

__all__ = ["BUILD_HINT", "bundle_dir", "page"]

BUNDLE_FILES = ("app.js", "app.css")
BUILD_HINT = (
    "The page's bundle is not built. With Node.js installed, run `npm ci && npm run build` in "
    "frontend/ of a source checkout, or reinstall the package where Node.js is present."
)
_CANDIDATES = (
    Path(__file__).resolve().parent / "static",
    Path(__file__).resolve().parents[2] / "frontend" / "dist",
)


def bundle_dir() -> Path | None:
    """The first directory holding the whole bundle, or ``None`` when it was never built."""
    for candidate in _CANDIDATES:
        if all((candidate / name).is_file() for name in BUNDLE_FILES):
            return candidate
    return None


def page(token: str, built: bool) -> str:
    """The one HTML page: the CSRF token in a meta tag, then the bundle (or how to build it)."""
    head = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Exact Online connector</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{escape(token)}">'
        '<link rel="icon" href="data:,">'
    )
    if not built:
        return f"{head}</head><body><main><p>{escape(BUILD_HINT)}</p></main></body></html>"
    return (
        f'{head}<link rel="stylesheet" href="/assets/app.css"></head>'
        '<body><div id="app"></div><script src="/assets/app.js"></script></body></html>'
    )
