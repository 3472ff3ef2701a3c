"""An engine's use of the connector, start to finish, against the embedded sandbox.

Opens a new vault (its key is created), adds a credential, signs in through the
authorization-code flow, runs Test Connect, fills two dropdowns, and chains the four actions by
the ``id`` every write returns. Nothing leaves 127.0.0.1.

    python examples/engine.py
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from exact_connector import ActionResult, Connector, Credential
from exact_connector.sandbox import Sandbox, serve


def sign_in(connector: Connector, credential: Credential) -> Credential:
    """The person's part, played here: open the sign-in URL, consent, come back with a code."""
    state = secrets.token_urlsafe(16)
    url = connector.authorization_url(credential, state)
    answer = httpx.get(url)  # the sandbox consents at once and redirects to the redirect URI
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return connector.complete_authorization(credential, query["code"][0], query["state"][0])


def step(connector: Connector, action: str, credential: Credential, inputs: dict[str, Any]) -> Any:
    """Run one workflow step; stop the example with the error's line if it failed."""
    result: ActionResult = connector.execute(action, credential, inputs)
    if not result["ok"]:
        error = result["error"]
        sys.exit(f"{action} failed: {error['code']}: {error['message']}")
    print(f"{action}: ok ({result['meta']['api_calls']} API call(s))")
    return result["data"]


def main() -> None:
    sandbox = Sandbox(auto_consent=True)
    app = sandbox.demo_app
    with serve(sandbox) as base_url, tempfile.TemporaryDirectory() as home:
        connector = Connector.open(home, create=True, allow_sandbox=True)
        credential = connector.credentials.begin(
            {
                "connector_name": "Sandbox B.V.",
                "auth_type": "oauth2_authorization_code",
                "server_url": base_url,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uri": app.redirect_uris[0],
            }
        )
        credential = sign_in(connector, credential)
        print(f"signed in; divisions {list(credential.allowed_divisions)}")
        report = connector.test_connect(credential)
        print("Test Connect:", "passed" if report["ok"] else "failed")
        connector.credentials.activate(credential)

        division = credential.default_division
        project = connector.options("projects", credential, division=division)[0]
        hour_type = connector.options("hour_types", credential, division=division)[0]
        where = {"division": division}
        data = {"Project": project["value"], "Item": hour_type["value"], "Quantity": 2.5}

        created = step(
            connector, "create_project_time_transaction", credential, {**where, "data": data}
        )
        changed = {**where, "id": created["id"], "data": {"Quantity": 3.0}}
        updated = step(connector, "update_project_time_transaction", credential, changed)
        record = {**where, "endpoint": "project/TimeTransactions", "id": updated["id"]}
        read = step(connector, "list_or_get_endpoint", credential, record)
        print(f"  {read['record']['ID']}: {read['record']['Quantity']} h on {project['label']}")
        deleted = step(connector, "delete_endpoint_record", credential, record)
        again = step(connector, "delete_endpoint_record", credential, record)
        print(
            f"  deleted {deleted['id']}; a retry finds it already_absent={again['already_absent']}"
        )
        connector.vault.close()


if __name__ == "__main__":
    main()
