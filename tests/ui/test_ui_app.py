"""Specification of the UI server: the page's API over a sandbox on loopback, its guard, and that
no stored secret ever reaches the browser."""

from __future__ import annotations

import pytest
from ui_harness import Ui
from vault_harness import tamper

from exact_connector.ui.guard import CSRF_HEADER

DIVISION = 100001


def test_page_carries_this_runs_csrf_token(ui: Ui) -> None:
    """GET / is the HTML page, with the token the page sends back on writes."""
    answer = ui.client.get("/")
    assert answer.status_code == 200
    assert f'<meta name="csrf-token" content="{ui.token}">' in answer.text


def test_every_answer_forbids_framing_and_referrers(ui: Ui) -> None:
    """The callback URL holds a one-time code: no Referer leaves the page, and it cannot be framed."""
    headers = ui.client.get("/api/state").headers
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:1", "localhost"])
def test_foreign_host_is_refused(ui: Ui, host: str) -> None:
    """A request naming another host (DNS rebinding) is refused before any route runs."""
    answer = ui.client.get("/api/state", headers={"host": host})
    assert answer.status_code == 421
    assert answer.json()["error"]["code"] == "wrong_host"


def test_write_without_the_token_is_refused_and_nothing_is_stored(ui: Ui) -> None:
    """A POST lacking the page's token (a form on another site) stores nothing."""
    form = ui.client.get("/api/forms/credentials").json()["formData"]
    answer = ui.client.post("/api/credentials", json={"formData": form})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "csrf"
    assert ui.client.get("/api/state").json()["credentials"] == []


def test_write_from_another_origin_is_refused(ui: Ui) -> None:
    """Even with the token, a browser request from another origin is refused."""
    answer = ui.client.post(
        "/api/credentials",
        json={"formData": {}},
        headers={CSRF_HEADER: ui.token, "origin": "http://evil.example"},
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "cross_origin"


@pytest.mark.parametrize(
    "body", [b"{not json", b"[" * 100_000 + b"]" * 100_000], ids=["broken", "nested-too-deep"]
)
def test_a_body_that_is_not_readable_json_is_an_input_error(ui: Ui, body: bytes) -> None:
    """A write whose body cannot be read is refused at ``$`` as input, not a server error."""
    answer = ui.client.post(
        "/api/credentials",
        content=body,
        headers={CSRF_HEADER: ui.token, "content-type": "application/json"},
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["category"] == "user"
    assert error["details"]["errors"][0]["path"] == "$"
    assert ui.client.get("/api/state").json()["credentials"] == []


def test_credential_form_offers_the_sandbox_and_its_app(ui: Ui) -> None:
    """On the sandbox the form lists it first among the servers and is filled in for its app."""
    form = ui.client.get("/api/forms/credentials").json()
    choices = form["schema"]["properties"]["server_url"]["oneOf"]
    assert choices[0] == {"const": ui.workspace.base_url, "title": "Sandbox (this machine)"}
    assert form["formData"]["redirect_uri"] == f"{ui.origin}/callback"
    assert form["formData"]["client_id"] == ui.workspace.app.client_id


def test_sign_in_comes_back_to_the_callback_and_runs_test_connect(ui: Ui) -> None:
    """Add -> sign-in -> /callback stores the tokens and the passing Test Connect report."""
    added = ui.add("Acme")
    assert added["status"] == "pending"
    state = ui.client.get("/api/state").json()
    (credential,) = state["credentials"]
    assert credential["report"]["ok"] is True
    assert credential["allowed_divisions"] == list(ui.workspace.sandbox.divisions)
    assert credential["fingerprints"]["refresh_token"].startswith("sha256-hmac:")


def test_no_stored_secret_reaches_the_browser(ui: Ui) -> None:
    """After storing, the API shows fingerprints only: the client secret and tokens never."""
    ui.add("Acme")
    text = ui.client.get("/api/state").text
    credential = ui.workspace.connector.credentials.get("Acme")
    for secret in (credential.client_secret, credential.refresh_token, credential.access_token):
        assert secret is not None
        assert secret.get_secret_value() not in text


def test_connect_and_create_needs_a_passing_test_connect(ui: Ui) -> None:
    """A credential that has not passed Test Connect cannot be activated; after it, it can."""
    form = ui.client.get("/api/forms/credentials").json()["formData"]
    added = ui.post("/api/credentials", {"formData": {**form, "connector_name": "Early"}}).json()
    refused = ui.post(f"/api/credentials/{added['credential']['id']}/activate")
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["errors"][0]["path"] == "$.report"
    ui.sign_in(added["authorize_url"])
    activated = ui.post(f"/api/credentials/{added['credential']['id']}/activate")
    assert activated.json()["status"] == "active"


def test_bad_credential_form_names_the_field_and_stores_nothing(ui: Ui) -> None:
    """A client id that is not a GUID comes back as an input error at its path."""
    form = ui.client.get("/api/forms/credentials").json()["formData"]
    answer = ui.post("/api/credentials", {"formData": {**form, "client_id": "nope"}})
    assert answer.status_code == 422
    paths = [e["path"] for e in answer.json()["error"]["details"]["errors"]]
    assert "$.client_id" in paths
    assert ui.client.get("/api/state").json()["credentials"] == []


def test_callback_for_a_sign_in_not_started_here_is_refused(ui: Ui) -> None:
    """An unknown state is a plain error page; nothing is stored."""
    answer = ui.client.get("/callback?code=abc&state=forged")
    assert answer.status_code == 400
    assert "not started here" in answer.text


def test_a_denied_consent_shows_as_a_failed_report(ui: Ui) -> None:
    """Exact's error redirect lands as a failed sign-in check; Connect & Create stays refused."""
    credential = ui.deny("Denied")
    assert credential["report"]["ok"] is False
    assert credential["report"]["checks"][0]["summary"] == "access_denied"


def _active(ui: Ui) -> str:
    added = ui.add("Acme")
    ui.post(f"/api/credentials/{added['id']}/activate")
    return str(added["id"])


def test_action_form_is_hydrated_with_division_names(ui: Ui) -> None:
    """The step's form lists the credential's divisions by name."""
    credential = _active(ui)
    form = ui.post("/api/forms/list_or_get_endpoint", {"credential": credential}).json()
    division = form["schema"]["properties"]["division"]
    assert [c["const"] for c in division["oneOf"]] == list(ui.workspace.sandbox.divisions)


def test_dry_run_shows_the_request_with_the_token_masked(ui: Ui) -> None:
    """A dry run answers the request it would send; nothing reaches the sandbox."""
    credential = _active(ui)
    before = sum(ui.workspace.sandbox.counters.requests.values())
    form_data = {"division": DIVISION, "endpoint": "project/TimeTransactions", "limit": 2}
    answer = ui.post(
        "/api/run/list_or_get_endpoint",
        {"credential": credential, "formData": form_data, "dry_run": True},
    ).json()
    assert answer["request"]["method"] == "GET"
    assert answer["request"]["sent"] is False
    assert "project/TimeTransactions" in answer["request"]["url"]
    access = ui.workspace.connector.credentials.get(credential).access_token
    assert access is not None
    assert access.get_secret_value() not in str(answer)
    assert sum(ui.workspace.sandbox.counters.requests.values()) == before


def test_run_answers_the_envelope(ui: Ui) -> None:
    """Run executes the action: the list with its cursor and the meta with API calls."""
    credential = _active(ui)
    form_data = {"division": DIVISION, "endpoint": "project/TimeTransactions", "limit": 2}
    answer = ui.post(
        "/api/run/list_or_get_endpoint", {"credential": credential, "formData": form_data}
    ).json()
    result = answer["result"]
    assert result["ok"] is True
    assert result["data"]["count"] == 2
    assert result["data"]["next_cursor"]
    assert result["meta"]["api_calls"] == 1


def test_bad_step_input_names_the_field_and_sends_nothing(ui: Ui) -> None:
    """Input failing its schema is an input error at its path; the sandbox sees no request."""
    credential = _active(ui)
    before = sum(ui.workspace.sandbox.counters.requests.values())
    form_data = {"division": DIVISION, "endpoint": "project/TimeTransactions", "limit": -1}
    answer = ui.post(
        "/api/run/list_or_get_endpoint", {"credential": credential, "formData": form_data}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["errors"][0]["path"] == "$.limit"
    assert sum(ui.workspace.sandbox.counters.requests.values()) == before


def test_remove_deletes_the_credential(ui: Ui) -> None:
    """Remove takes the credential and its secrets out of the vault."""
    added = ui.add("Acme")
    answer = ui.client.delete(f"/api/credentials/{added['id']}", headers={CSRF_HEADER: ui.token})
    assert answer.json() == {"removed": added["id"]}
    assert ui.client.get("/api/state").json()["credentials"] == []


def test_a_credential_that_no_longer_decrypts_is_listed_by_name_and_error(ui: Ui) -> None:
    """State lists it apart, with the field and code that failed and what to do, beside the
    readable credentials, and none of its secrets."""
    kept = ui.add("Kept")
    broken = ui.workspace.connector.credentials.get(ui.add("Broken")["id"])
    tamper(ui.workspace.connector.vault.home, broken.id)

    answer = ui.client.get("/api/state")

    assert [c["id"] for c in answer.json()["credentials"]] == [kept["id"]]
    assert answer.json()["unreadable"] == [
        {
            "id": broken.id,
            "connector_name": "Broken",
            "error_code": "vault_integrity",
            "field": "client_secret",
            "hint": "It was changed outside exact-connector: remove it and add it again.",
        }
    ]
    for secret in (broken.client_secret, broken.refresh_token, broken.access_token):
        assert secret is not None
        assert secret.get_secret_value() not in answer.text


def test_remove_deletes_a_credential_that_no_longer_decrypts(ui: Ui) -> None:
    """DELETE takes it out of the vault without decrypting it; the state no longer lists it."""
    broken = ui.add("Broken")["id"]
    tamper(ui.workspace.connector.vault.home, broken)
    assert [u["id"] for u in ui.client.get("/api/state").json()["unreadable"]] == [broken]

    answer = ui.client.delete(f"/api/credentials/{broken}", headers={CSRF_HEADER: ui.token})

    assert answer.json() == {"removed": broken}
    assert ui.client.get("/api/state").json() == {
        "mode": "sandbox",
        "workspace": ui.workspace.connector.vault.workspace,
        "credentials": [],
        "unreadable": [],
    }


def test_reauthorize_gives_a_new_sign_in_address(ui: Ui) -> None:
    """Reauthorize starts a new sign-in that comes back to the same credential."""
    added = ui.add("Acme")
    again = ui.post(f"/api/credentials/{added['id']}/reauthorize").json()
    assert ui.sign_in(again["authorize_url"]) == f"/#/credentials/{added['id']}"


def test_unknown_action_is_an_input_error(ui: Ui) -> None:
    """A form for an action the manifest does not declare is refused with the connector's error."""
    answer = ui.post("/api/forms/no_such_action", {})
    assert answer.status_code in (409, 422)
    assert answer.json()["error"]["code"]


def test_a_credential_signing_in_elsewhere_is_not_reauthorized_here(ui: Ui) -> None:
    """A credential whose redirect URI is not this page's callback says so (no dead sign-in)."""
    elsewhere = {
        **ui.workspace.credential_form("Elsewhere"),
        "redirect_uri": "http://127.0.0.1:1/cb",
    }
    ui.workspace.connector.credentials.begin(elsewhere)
    (credential,) = ui.client.get("/api/state").json()["credentials"]
    assert credential["signs_in_here"] is False
    assert ui.add("Here")["signs_in_here"] is True


def test_a_callback_met_by_a_token_endpoint_outage_can_be_reloaded(ui: Ui) -> None:
    """Exact's token endpoint answers 503 to the callback: the error says to reload the page,
    and reloading it signs in (the page used to forget the sign-in before the exchange, so the
    reload was refused as "not started here")."""
    callback = ui.consent(ui.begin("Outage")["authorize_url"])
    ui.workspace.sandbox.faults.add("error", status=503, path_contains="/oauth2/token", times=1)

    failed = ui.client.get(callback, follow_redirects=False)
    reloaded = ui.client.get(callback, follow_redirects=False)

    assert failed.status_code == 503, failed.text
    assert "same sign-in answer again" in failed.text
    assert reloaded.status_code == 303, reloaded.text
    (credential,) = ui.client.get("/api/state").json()["credentials"]
    assert credential["report"]["ok"] is True


def test_a_sign_in_in_a_minute_whose_calls_are_used_comes_back_at_once_saying_when(
    ui: Ui,
) -> None:
    """The callback runs Test Connect before the browser is sent back. In a minute whose 60
    calls other steps had used, it waited for the next minute on the consent page, with nothing
    shown; now the report comes back at once, its rate-limited check saying when to test again."""
    first = ui.add("Busy")
    connector = ui.workspace.connector
    connector.credentials.activate(first["id"])
    ask = {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 1, "select": ["ID"]}
    for _ in range(200):  # the minute's calls of this app in this division, one step each
        ran = connector.execute("list_or_get_endpoint", "Busy", ask, deadline_seconds=1)
        if not ran["ok"]:  # the minute is used: a step that would wait for the next fails
            assert ran["error"]["code"] == "rate_limited", ran["error"]
            break
    added = ui.begin("Second")
    ui.sign_in(added["authorize_url"])
    (report,) = [c["report"] for c in ui.client.get("/api/state").json()["credentials"]
                 if c["connector_name"] == "Second"]  # fmt: skip
    assert report["ok"] is False
    (failed,) = [check for check in report["checks"] if not check["ok"]]
    assert failed["code"] == "rate_limited" and failed["retry_at"], failed
    assert failed["remediation"] == "Run Test Connect again after retry_at."
