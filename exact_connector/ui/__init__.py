"""``exact-connector ui``: the Vault page and the step runner, served to a browser on loopback.

The page is the reference host of the connector's forms: a person adds a credential through the
generated credential form, signs in through the real authorization-code flow (Exact, or the
embedded sandbox, redirects back to this app's ``/callback``), reads the Test Connect report, and
runs actions from their hydrated forms. Everything the page does goes through the same
:class:`~exact_connector.runtime.Connector` an engine uses.

The web server (Starlette on uvicorn) is the optional ``ui`` extra, so engines that embed the
plugin carry no web stack: ``pip install 'exact-connector[ui]'``.

- :mod:`~exact_connector.ui.app`: the routes (JSON API, sign-in callback, the page itself).
- :mod:`~exact_connector.ui.guard`: loopback-only Host check, CSRF token, response headers.
- :mod:`~exact_connector.ui.assets`: where the built front end is, and the HTML shell.
"""

from __future__ import annotations

from exact_connector.ui.app import UiSettings, create_app

__all__ = ["UiSettings", "create_app"]
