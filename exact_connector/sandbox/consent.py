"""The two HTML pages of the sandbox's sign-in: the consent screen and the OAuth error page.

The consent form posts back to ``/api/oauth2/auth`` with the authorize parameters as hidden fields,
one ``division`` checkbox per administration (Exact lets the user narrow the grant), and a
``decision`` button: ``allow`` or ``deny``.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

__all__ = ["consent_page", "error_page"]

_STYLE = (
    "body{font-family:sans-serif;max-width:32em;margin:3em auto;color:#222}"
    "button{margin-right:1em;padding:.4em 1.2em}fieldset{margin:1em 0}"
)


def consent_page(
    app_name: str,
    hidden: Mapping[str, str],
    divisions: Mapping[int, str],
    problem: str | None = None,
) -> str:
    """The page asking the user to let ``app_name`` use some of their administrations."""
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in hidden.items()
    )
    boxes = "".join(
        f'<label><input type="checkbox" name="division" value="{code}" checked> '
        f"{escape(description)} ({code})</label><br>"
        for code, description in divisions.items()
    )
    notice = f'<p role="alert">{escape(problem)}</p>' if problem else ""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Exact Online sandbox - consent'
        f"</title><style>{_STYLE}</style></head><body><h1>Exact Online sandbox</h1>"
        f"<p><strong>{escape(app_name)}</strong> asks for access to your administrations.</p>"
        f'{notice}<form method="post" action="/api/oauth2/auth">{fields}'
        f"<fieldset><legend>Administrations</legend>{boxes}</fieldset>"
        '<button type="submit" name="decision" value="allow">Allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form></body></html>"
    )


def error_page(message: str) -> str:
    """The page shown instead of a redirect when the client or redirect URI is not registered."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Exact Online sandbox - error'
        f"</title></head><body><h1>Sign-in failed</h1><p>{escape(message)}</p></body></html>"
    )
