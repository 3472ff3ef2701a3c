"""What the page says when a person does what people do: reloads the callback, denies the
consent, types more hours than any amount can hold."""

from __future__ import annotations

import json

import pytest
from ui_harness import Ui

DIVISION = 100001


def _strict(line: str) -> object:
    """JSON as a browser's JSON.parse reads it: no NaN, Infinity or -Infinity."""

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def test_reloading_the_callback_after_the_sign_in_finished_says_so(ui: Ui) -> None:
    """Reload the /callback page (or Back to the consent page and Allow again) after a finished
    sign-in: the page must not speak of fields, JSON paths or "details.errors"."""
    callback = ui.consent(ui.begin("Acme")["authorize_url"])
    assert ui.client.get(callback, follow_redirects=False).status_code == 303

    reloaded = ui.client.get(callback, follow_redirects=False)

    assert reloaded.status_code == 400
    assert "already finished" in reloaded.text and "Vault page" in reloaded.text
    assert "details.errors" not in reloaded.text
    assert "$.state" not in reloaded.text
    assert "run the step again" not in reloaded.text


def test_a_denied_consent_says_what_to_do(ui: Ui) -> None:
    """Deny on the consent page: the failed sign_in check tells the person what to do next."""
    credential = ui.deny("Denied")
    (check,) = credential["report"]["checks"]
    assert check["ok"] is False
    assert check["summary"] == "access_denied"
    assert "Reauthorize" in check["remediation"], check  # the page showed only the code


def _active(ui: Ui) -> str:
    added = ui.add("Acme")
    ui.post(f"/api/credentials/{added['id']}/activate")
    return str(added["id"])


def test_a_huge_quantity_answers_json_the_page_can_read(ui: Ui) -> None:
    """Hours = 1e308 on the sandbox: the record is created; the streamed answer (and every
    later list holding the record) must still be JSON a browser can parse (the sandbox's amount
    overflowed to Infinity, which JSON does not have)."""
    credential = _active(ui)
    form = ui.post("/api/forms/create_project_time_transaction", {"credential": credential})
    data = form.json()["schema"]["properties"]["data"]["properties"]
    project = data["Project"]["oneOf"][0]["const"]
    item = data["Item"]["oneOf"][0]["const"]
    form_data = {
        "division": DIVISION,
        "data": {"Project": project, "Item": item, "Quantity": 1e308},
    }
    created = ui.client.post(
        "/api/run/create_project_time_transaction",
        json={"credential": credential, "formData": form_data},
        headers={"X-CSRF-Token": ui.token, "Accept": "application/x-ndjson"},
    )
    lines = [_strict(line) for line in created.text.splitlines()]  # ValueError: Infinity
    assert "answer" in lines[-1]  # type: ignore[operator]

    listed = ui.post(
        "/api/run/list_or_get_endpoint",
        {
            "credential": credential,
            "formData": {"division": DIVISION, "endpoint": "project/TimeTransactions"},
        },
    )
    assert listed.status_code == 200, listed.text  # was: 500 "Internal Server Error"


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_step_whose_credential_was_removed_meanwhile_says_so(ui: Ui, dry_run: bool) -> None:
    """The step page keeps the credential list it loaded; removed on another tab, the credential
    used to come back as "no credential '<an id the person never saw>'" with a hint to check
    the name. The page now says it was removed, and what to do."""
    credential = _active(ui)
    assert ui.client.delete(
        f"/api/credentials/{credential}", headers={"X-CSRF-Token": ui.token}
    ).is_success
    form_data = {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 1}
    body = {"credential": credential, "formData": form_data, "dry_run": dry_run}
    answer = ui.post("/api/run/list_or_get_endpoint", body)
    error = answer.json()["error"]
    assert error["code"] == "credential_not_found"
    assert "no longer in the vault" in error["message"]
    assert "Reload the page" in error["hint"]
    form = ui.post("/api/forms/list_or_get_endpoint", {"credential": credential}).json()
    assert "no longer in the vault" in form["error"]["message"]
