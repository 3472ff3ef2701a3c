"""The routes: a JSON API over one :class:`Connector`, the sign-in callback, and the page.

| route | what it does |
| --- | --- |
| ``GET /`` | the page (the React app), with this run's CSRF token |
| ``GET /api/state`` | the workspace's credentials (fingerprints, never secrets), those whose |
| | record no longer decrypts (names and error codes only), and the mode |
| ``GET /api/forms/credentials`` | the credential form (RJSF), prefilled on the sandbox |
| ``POST /api/credentials`` | store a credential (pending); the sign-in address to open |
| ``GET /callback`` | where Exact sends the browser back: tokens stored, Test Connect run |
| ``POST /api/credentials/{id}/test`` | Test Connect again |
| ``POST /api/credentials/{id}/activate`` | Connect & Create (only after a passing Test Connect) |
| ``POST /api/credentials/{id}/reauthorize`` | a new sign-in address |
| ``DELETE /api/credentials/{id}`` | remove the credential and its secrets |
| ``GET /api/actions`` | the actions a step can run |
| ``POST /api/forms/{action}`` | an action's form, hydrated for a credential and the values so far |
| ``POST /api/run/{action}`` | the form data made input, then a dry run (the request) or the run; |
| | with ``Accept: application/x-ndjson``, the run's progress as it happens (:mod:`.stream`) |

Errors are the connector's own error objects (``{"error": {code, category, message, hint,
details}}``) with an HTTP status by category; a bug answers 500 with no traceback. The connector
is synchronous, so every call runs in the thread pool.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from exact_connector import forms
from exact_connector.cli.vault import credential_summary
from exact_connector.exceptions import (
    Category,
    CredentialNotFound,
    ExactConnectorError,
    InputError,
    TransientError,
)
from exact_connector.progress import Progress
from exact_connector.runtime import Connector
from exact_connector.ui.assets import bundle_dir, page
from exact_connector.ui.guard import Guard
from exact_connector.ui.stream import streamed, wants_stream
from exact_connector.vault import VerifyResult
from exact_connector.vault.sealing import KEY_ENV, KEY_FILE_NAME

__all__ = ["UiSettings", "create_app"]

#: The HTTP status for each error category: what the page should do is in the body.
_STATUS = {Category.USER: 422, Category.CONFIG: 409, Category.TRANSIENT: 503, Category.SYSTEM: 502}
_Handler = Callable[[Request], Awaitable[Response]]

#: What a person can do about a credential whose record no longer decrypts, by its error code.
_REMEDIES = {
    "vault_key_unknown": (
        "It is sealed under a key this vault no longer holds: restore the key file "
        f"({KEY_FILE_NAME}, or {KEY_ENV}) with that key to read it again, or remove it and add "
        "it again."
    ),
    "vault_unsupported_format": (
        "A newer exact-connector wrote it: upgrade to read it, or remove it and add it again."
    ),
}
_REMOVE_AND_ADD = "It was changed outside exact-connector: remove it and add it again."
#: How long the sign-in callback's Test Connect may wait before the browser is sent back.
_CALLBACK_TEST_SECONDS = 10.0


@dataclass
class UiSettings:
    """How one run of the app is set up.

    ``origin`` is ``http://127.0.0.1:PORT``; ``sandbox`` is the embedded sandbox's credential form
    data when the app runs on it (its server URL is then offered beside Exact's regions).
    """

    origin: str
    token: str
    sandbox: dict[str, Any] | None = None

    @property
    def callback(self) -> str:
        """The redirect URI this app receives sign-ins on."""
        return f"{self.origin}/callback"

    @property
    def hosts(self) -> tuple[str, ...]:
        port = self.origin.rsplit(":", 1)[1]
        return (f"127.0.0.1:{port}", f"localhost:{port}")


@dataclass
class _Session:
    """What the app remembers between requests: sign-ins under way and Test Connect reports."""

    connector: Connector
    settings: UiSettings
    sign_ins: dict[str, str] = field(default_factory=dict)  # state -> credential id
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # credential id -> report

    def describe(self, credential_id: str) -> dict[str, Any]:
        vault = self.connector.vault
        summary = credential_summary(vault, vault.get(credential_id))
        summary["report"] = self.reports.get(summary["id"])
        # A sign-in comes back here only when the app registered this page's callback.
        summary["signs_in_here"] = summary["redirect_uri"] == self.settings.callback
        return summary

    def start_sign_in(self, credential_id: str) -> str:
        state = secrets.token_urlsafe(24)
        url = self.connector.authorization_url(credential_id, state)
        self.sign_ins[state] = credential_id
        return url

    def test(self, credential_id: str, *, deadline_seconds: float | None = None) -> dict[str, Any]:
        report = self.connector.test_connect(credential_id, deadline_seconds=deadline_seconds)
        self.reports[credential_id] = report
        return self.describe(credential_id)

    def credential_form(self) -> dict[str, Any]:
        form = self.connector.rjsf_form("credentials")
        form["formData"] = {"redirect_uri": self.settings.callback}
        sandbox = self.settings.sandbox
        if sandbox is not None:
            choices = form["schema"]["properties"]["server_url"]["oneOf"]
            choices.insert(0, {"const": sandbox["server_url"], "title": "Sandbox (this machine)"})
            form["formData"] = dict(sandbox)
        return form

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        """The credential form's data stored; then the sign-in address, or Test Connect."""
        form_data = body.get("formData")
        if not isinstance(form_data, dict):
            raise InputError.at("$", "type", "expected the credential form's data")
        server_url = form_data.get("server_url")
        sandbox = self.settings.sandbox
        on_sandbox = sandbox is not None and server_url == sandbox["server_url"]
        regions = self.connector.manifest.server_urls
        checked = {**form_data, "server_url": regions[0].url} if on_sandbox else form_data
        inputs = {**forms.to_input("credentials", checked), "server_url": server_url}
        credential = self.connector.credentials.begin(inputs)
        if credential.auth_type == "oauth2_authorization_code":
            return {"credential": self.describe(credential.id), **self.reauthorize(credential.id)}
        return {"credential": self.test(credential.id)}

    def reauthorize(self, credential_id: str) -> dict[str, Any]:
        return {"authorize_url": self.start_sign_in(credential_id)}

    def complete(self, query: dict[str, str]) -> str:
        """The callback: tokens stored and Test Connect run; the page's address to go back to."""
        state = query.get("state", "")
        credential_id = self.sign_ins.get(state)
        if credential_id is None:
            raise InputError(
                "This sign-in was not started here, or it has already finished.",
                errors=[{"path": "$.state", "code": "state", "message": "not a sign-in under way"}],
                hint="If you reloaded this page or went back to the sign-in after finishing it, "
                "nothing is wrong: the Vault page shows the credential and its Test Connect "
                "report. Otherwise start the sign-in again with Reauthorize.",
            )
        if "code" not in query:
            self.sign_ins.pop(state, None)
            problem = query.get("error_description") or query.get("error") or "no code returned"
            remediation = (
                "The sign-in was refused or cancelled on Exact Online's page: press Reauthorize "
                "and choose Allow to sign in again."
            )
            self.reports[credential_id] = {
                "ok": False,
                "checks": [
                    {"name": "sign_in", "ok": False, "summary": problem, "remediation": remediation}
                ],
            }
            return f"/#/credentials/{quote(credential_id)}"
        try:
            self.connector.complete_authorization(credential_id, query["code"], state)
        except TransientError:
            # Exact's token endpoint did not answer: the vault keeps the sign-in open, and
            # reloading this page tries the same answer again (its hint says so).
            raise
        except BaseException:
            self.sign_ins.pop(state, None)
            raise
        self.sign_ins.pop(state, None)
        # The browser waits on Exact's consent page meanwhile, with nothing shown: a check that
        # would wait (a minute whose calls are used) fails at once and says when to test again.
        self.test(credential_id, deadline_seconds=_CALLBACK_TEST_SECONDS)
        return f"/#/credentials/{quote(credential_id)}"

    def activate(self, credential_id: str) -> dict[str, Any]:
        report = self.reports.get(credential_id)
        if report is None or not report["ok"]:
            raise InputError.at(
                "$.report", "test_connect", "run a passing Test Connect before Connect & Create"
            )
        self.connector.credentials.activate(credential_id)
        return self.describe(credential_id)

    def action_form(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        self.connector.manifest.action(action)  # an unknown action is an input error
        if body.get("credential"):
            self._still_stored(str(body["credential"]))
        return self.connector.rjsf_form(
            action,
            credential=body.get("credential") or None,
            values=body.get("values") or {},
            search=body.get("search") or None,
        )

    def run(
        self, action: str, body: dict[str, Any], progress: Progress | None = None
    ) -> dict[str, Any]:
        inputs = forms.to_input(action, body.get("formData"))
        credential = str(body.get("credential", ""))
        self._still_stored(credential)
        if body.get("dry_run"):
            return {"request": self.connector.plan(action, credential, inputs), "input": inputs}
        result = self.connector.execute(action, credential, inputs, progress=progress)
        return {"result": result, "input": inputs}

    def _still_stored(self, credential_id: str) -> None:
        """The step's credential, said in the page's terms when it is gone: the page picked it
        from the list it loaded, and it was removed since (on another tab, say)."""
        try:
            self.connector.credentials.get(credential_id)
        except CredentialNotFound:
            raise CredentialNotFound(
                "The credential this step uses is no longer in the vault (it was removed, "
                "perhaps on another tab).",
                details={"credential_id": credential_id},
                hint="Reload the page and pick another credential, or add one on the Vault page.",
            ) from None


def _unreadable(result: VerifyResult) -> dict[str, Any]:
    """A credential whose record no longer decrypts, as the page shows it: names and codes only."""
    return {
        "id": result.id,
        "connector_name": result.connector_name,
        "error_code": result.error_code,
        "field": result.field,
        "hint": _REMEDIES.get(result.error_code or "", _REMOVE_AND_ADD),
    }


def _status(error: ExactConnectorError) -> int:
    return _STATUS[error.category]


def _error(error: ExactConnectorError) -> JSONResponse:
    return JSONResponse({"error": error.to_dict()}, status_code=_status(error))


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can read
        raise InputError.at("$", "json", "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InputError.at("$", "type", "expected a JSON object")
    return body


def create_app(connector: Connector, settings: UiSettings) -> Starlette:
    """The ASGI app serving ``connector``'s workspace on ``settings.origin``."""
    session = _Session(connector, settings)
    built = bundle_dir()

    def threaded(work: Callable[..., Any], *parts: str, body: bool = False) -> _Handler:
        """A route passing its path parameters (and JSON body) to ``work``, run off the loop."""

        async def handle(request: Request) -> Response:
            args: list[Any] = [request.path_params[p] for p in parts]
            try:
                if body:
                    args.append(await _body(request))
                return JSONResponse(await run_in_threadpool(work, *args))
            except ExactConnectorError as error:
                return _error(error)

        return handle

    async def index(request: Request) -> Response:
        return HTMLResponse(page(settings.token, built is not None))

    def state() -> dict[str, Any]:
        # One walk over the records, as `credentials list` does: an unreadable one is listed
        # apart (names and codes only), so the page can still show and remove it.
        results = connector.vault.verify()
        return {
            "mode": "sandbox" if settings.sandbox else "vault",
            "workspace": connector.vault.workspace,
            "credentials": [session.describe(r.id) for r in results if r.ok],
            "unreadable": [_unreadable(r) for r in results if not r.ok],
        }

    def actions() -> list[dict[str, Any]]:
        return [
            {"id": a.id, "title": a.title, "description": a.description, "read_only": a.read_only}
            for a in connector.manifest.actions
        ]

    def remove(credential_id: str) -> dict[str, Any]:
        connector.credentials.remove(credential_id)
        session.reports.pop(credential_id, None)
        return {"removed": credential_id}

    run_answered = threaded(session.run, "action", body=True)

    async def run(request: Request) -> Response:
        """The step: one JSON answer, or its progress streamed when the page asks for it."""
        action = request.path_params["action"]
        if not wants_stream(request.headers.get("accept", "")):
            return await run_answered(request)
        try:
            body = await _body(request)
        except ExactConnectorError as error:
            return _error(error)
        return streamed(lambda progress: session.run(action, body, progress), _status)

    async def callback(request: Request) -> Response:
        try:
            target = await run_in_threadpool(session.complete, dict(request.query_params))
        except ExactConnectorError as error:
            text = escape(f"{error.message} {error.hint or ''}")
            status = 503 if isinstance(error, TransientError) else 400  # 503: reloading may help
            return HTMLResponse(f'<p>{text}</p><p><a href="/">Back</a></p>', status_code=status)
        return RedirectResponse(target, status_code=303)

    routes: list[BaseRoute] = [
        Route("/", index),
        Route("/callback", callback),
        Route("/api/state", threaded(state)),
        Route("/api/forms/credentials", threaded(session.credential_form)),
        Route("/api/credentials", threaded(session.add, body=True), methods=["POST"]),
        Route("/api/credentials/{id}/test", threaded(session.test, "id"), methods=["POST"]),
        Route("/api/credentials/{id}/activate", threaded(session.activate, "id"), methods=["POST"]),
        Route(
            "/api/credentials/{id}/reauthorize",
            threaded(session.reauthorize, "id"),
            methods=["POST"],
        ),
        Route("/api/credentials/{id}", threaded(remove, "id"), methods=["DELETE"]),
        Route("/api/actions", threaded(actions)),
        Route(
            "/api/forms/{action}",
            threaded(session.action_form, "action", body=True),
            methods=["POST"],
        ),
        Route("/api/run/{action}", run, methods=["POST"]),
    ]
    if built is not None:
        routes.append(Mount("/assets", StaticFiles(directory=built), name="assets"))
    middleware = [Middleware(Guard, hosts=settings.hosts, token=settings.token)]
    return Starlette(routes=routes, middleware=middleware)
