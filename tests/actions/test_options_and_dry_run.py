"""Dynamic options, the dry run and the ``options`` CLI, as a person filling a workflow step's
form meets them: a filter-only endpoint's dropdown, a sync feed's search, divisions of an
accountant, a pending credential; a dry run that refuses and warns as the run does.

Each test failed on the code before (a review of this area reproduced them). The sandbox answers
in-process (``httpx.MockTransport``) or on a loopback port.
"""

from __future__ import annotations

import base64
import contextlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exact_connector.catalog import catalog
from exact_connector.clock import ManualClock
from exact_connector.exceptions import ExactConnectorError, InputError
from exact_connector.runtime import Connector
from exact_connector.sandbox import Sandbox, serve
from exact_connector.testing import Connected, _sign_in, connect
from exact_connector.vault import Vault
from exact_connector.vault.sealing import generate_key

DIVISION = 100001


# -- helpers ------------------------------------------------------------------------------------


@contextlib.contextmanager
def bench(tmp_path: Path, **sandbox_options: object) -> Iterator[Connected]:
    """A signed-in, active credential on an in-process sandbox on a manual clock."""
    clock = ManualClock()
    options = {"auto_consent": True, "limits": False, **sandbox_options}
    sb = Sandbox(clock=clock, **options)  # type: ignore[arg-type]
    with connect(sb, tmp_path / "vault") as connected:
        yield connected


def api_calls(sb: Sandbox, since: int) -> list[httpx.Request]:
    """The REST API requests (not token requests) the sandbox saw after the first ``since``."""
    return [r for r in sb.requests[since:] if "/api/v1/" in str(r.url)]


def first_api_request(sb: Sandbox, since: int) -> tuple[str, str]:
    request = api_calls(sb, since)[0]
    return request.method, str(request.url)


# -- 1. records lookups of an endpoint with a mandatory filter burn the error budget -------------


def test_records_lookup_of_a_filter_only_endpoint_does_not_lock_the_endpoint(
    tmp_path: Path,
) -> None:
    """Sales invoices (and orders, quotations, purchase orders) have a sync twin, so Exact may
    demand a $filter on their lists; the records dropdown of the list/delete form asks without
    one. The first refusal must be remembered (as ``_page``'s docstring promises: "one refused
    call, not one per form"), not repeated at every hydration of the form until the connector's
    own error-budget guard blocks the endpoint for an hour -- real, valid runs included."""
    with bench(tmp_path, mandatory_filter=True) as c:
        connector, cid, sb = c.connector, c.credential_id, c.sandbox
        before = len(sb.requests)
        for _ in range(9):  # a person re-opening / re-hydrating the step's form
            with contextlib.suppress(ExactConnectorError):
                connector.options(
                    "records", cid, division=DIVISION, endpoint="salesinvoice/SalesInvoices"
                )
        refused = [r for r in api_calls(sb, before)]
        assert len(refused) <= 1, f"{len(refused)} refused list calls were sent to Exact"

        # A valid run with a filter must still work afterwards.
        result = connector.execute(
            "list_or_get_endpoint",
            cid,
            {
                "division": DIVISION,
                "endpoint": "salesinvoice/SalesInvoices",
                "filter": "InvoiceNumber gt 0",
                "limit": 1,
            },
        )
        assert result["ok"], result.get("error")


def test_hydrating_the_list_form_repeatedly_keeps_the_real_run_working(tmp_path: Path) -> None:
    """The same through ``rjsf_form`` (what the UI calls whenever division or endpoint change)."""
    with bench(tmp_path, mandatory_filter=True) as c:
        connector, cid = c.connector, c.credential_id
        values = {"division": DIVISION, "endpoint": "salesorder/SalesOrders"}
        for _ in range(9):
            connector.rjsf_form("list_or_get_endpoint", credential=cid, values=values)
        result = connector.execute(
            "list_or_get_endpoint",
            cid,
            {**values, "filter": "OrderNumber gt 0", "limit": 1},
        )
        assert result["ok"], result.get("error")


# -- 2. a search in the records dropdown of a sync endpoint is sent and refused by Exact ---------


def test_records_search_on_a_sync_endpoint_is_refused_before_sending(tmp_path: Path) -> None:
    """sync/… endpoints are offered by ``endpoints?method=GET``; their records dropdown with a
    search sends ``substringof(...)``, which Exact refuses (sync takes only ``Timestamp gt N``)
    and counts toward its hourly lockout. The list action refuses such a filter before sending
    (``lists.pager``: code ``sync_filter``); the dropdown should too, at ``$.search``."""
    with bench(tmp_path) as c:
        sb = c.sandbox
        before = len(sb.requests)
        with pytest.raises(InputError) as raised:
            c.connector.options(
                "records",
                c.credential_id,
                division=DIVISION,
                endpoint="sync/CRM/Accounts",
                search="a",
            )
        sent = [str(r.url) for r in api_calls(sb, before)]
        assert sent == [], f"sent to Exact and refused ({raised.value.code}): {sent}"
        assert [e["path"] for e in raised.value.errors] == ["$.search"]


# -- 3. the dry run and the run disagree -----------------------------------------------------------


def test_dry_run_shows_the_request_the_run_sends_after_a_filter_was_demanded(
    tmp_path: Path,
) -> None:
    """Once the connection learnt that Exact demands a filter on crm/Accounts, a plain list goes
    to sync/CRM/Accounts at once. The dry run builds on a fresh client that does not know it, so
    it shows GET crm/Accounts -- a request the run will not send."""
    with bench(tmp_path, mandatory_filter=True) as c:
        connector, cid, sb = c.connector, c.credential_id, c.sandbox
        inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "select": ["ID"], "limit": 5}
        assert connector.execute("list_or_get_endpoint", cid, inputs)["ok"]  # learns it

        plan = connector.plan("list_or_get_endpoint", cid, inputs)
        before = len(sb.requests)
        assert connector.execute("list_or_get_endpoint", cid, inputs)["ok"]
        method, url = first_api_request(sb, before)

        assert (plan["method"], httpx.URL(plan["url"]).path) == (method, httpx.URL(url).path)


def test_dry_run_of_a_credential_that_needs_reauth_is_refused_like_the_run(
    tmp_path: Path,
) -> None:
    """The run answers reauth_required without sending anything; the dry run says all is well
    and shows a request that will never be sent."""
    with bench(tmp_path) as c:
        connector, cid = c.connector, c.credential_id
        c.vault.set_status(cid, "needs_reauth")
        inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 1}

        run = connector.execute("list_or_get_endpoint", cid, inputs)
        assert run["ok"] is False and run["error"]["code"] == "reauth_required"
        with pytest.raises(ExactConnectorError) as planned:
            connector.plan("list_or_get_endpoint", cid, inputs)
        assert planned.value.code == "reauth_required"


def test_dry_run_of_an_endpoint_held_by_the_error_budget_is_refused_like_the_run(
    tmp_path: Path,
) -> None:
    """After 8 failed calls the run refuses the endpoint for an hour without sending
    (error_budget_protect); the dry run still says OK."""
    with bench(tmp_path) as c:
        connector, cid = c.connector, c.credential_id
        for _ in range(8):
            missing = {"division": DIVISION, "endpoint": "crm/Accounts", "id": str(uuid.uuid4())}
            connector.execute("list_or_get_endpoint", cid, missing)
        inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "id": str(uuid.uuid4())}

        run = connector.execute("list_or_get_endpoint", cid, inputs)
        assert run["ok"] is False and run["error"]["code"] == "error_budget_protect"
        with pytest.raises(ExactConnectorError) as planned:
            connector.plan("list_or_get_endpoint", cid, inputs)
        assert planned.value.code == "error_budget_protect"


def test_dry_run_of_a_trigger_id_is_an_input_error_not_a_keyerror(tmp_path: Path) -> None:
    """``checked`` accepts trigger ids (their forms validate), so ``plan("record_changed", …)``
    reaches ``ACTIONS[action]`` and crashes with KeyError (a traceback in the CLI's
    ``run --dry-run`` and a 500 in the UI); ``execute`` says "There is no action with that id"."""
    with bench(tmp_path) as c:
        inputs = {"division": DIVISION, "endpoint": "crm/Accounts"}
        run = c.connector.execute("record_changed", c.credential_id, inputs)
        assert run["error"]["code"] == "invalid_input"
        with pytest.raises(InputError):
            c.connector.plan("record_changed", c.credential_id, inputs)


def test_dry_run_of_a_typed_endpoint_says_it_is_not_in_the_catalog(tmp_path: Path) -> None:
    """A typo (crm/Acounts) passes the dry run with no word that the endpoint is not in the
    catalog and will be called as typed -- the run's warning ``endpoint_not_in_catalog`` (its
    ``step.warnings``) is dropped by ``plan`` -- and the real run then fails with
    unknown_endpoint. The dry run should carry that warning."""
    with bench(tmp_path) as c:
        inputs = {"division": DIVISION, "endpoint": "crm/Acounts", "limit": 1}  # a typo
        plan = c.connector.plan("list_or_get_endpoint", c.credential_id, inputs)
        run = c.connector.execute("list_or_get_endpoint", c.credential_id, inputs)
        assert run["ok"] is False and run["error"]["code"] == "unknown_endpoint"
        assert "endpoint_not_in_catalog" in str(plan), plan


# -- 4. divisions: a search is ignored and the note lies --------------------------------------------


def test_many_divisions_note_does_not_claim_a_cut_list(tmp_path: Path) -> None:
    """An accountant's credential with 70 divisions: all 70 are listed (divisions are never
    cut), yet the field's help says only the first 60 are."""
    divisions = range(200001, 200071)
    with bench(tmp_path, divisions=divisions, rows=2) as c:
        spec = c.connector.form_spec("list_or_get_endpoint", credential=c.credential_id)
        field = next(f for f in spec["fields"] if f["name"] == "division")
        assert len(field["options"]) == 70
        assert field["options_note"] is None, field["options_note"]


def test_divisions_search_narrows_the_list(tmp_path: Path) -> None:
    """``search`` narrows live lists (README); for divisions it is silently ignored, so with
    hundreds of administrations the note's advice ("ask with a search") cannot work."""
    divisions = range(200001, 200071)
    with bench(tmp_path, divisions=divisions, rows=2) as c:
        found = c.connector.options("divisions", c.credential_id, search="Administratie 70")
        assert [o["value"] for o in found] == [200070]


# -- 5. a pending credential: empty lists, no word why --------------------------------------------


def test_divisions_of_a_pending_credential_say_the_sign_in_is_not_finished(
    tmp_path: Path,
) -> None:
    """A credential whose sign-in was aborted: ``options("divisions")`` returns [] and the
    hydrated form has no warning at all, so the division dropdown is just empty. Actions on it
    say credential_not_active; the dropdown should say so too (error, or a form warning)."""
    with bench(tmp_path) as c:
        app = c.sandbox.demo_app
        pending = c.connector.credentials.begin(
            {
                "connector_name": "pending one",
                "auth_type": "oauth2_authorization_code",
                "server_url": c.server_url,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uri": app.redirect_uris[0],
            }
        )
        form = c.connector.rjsf_form("create_project_time_transaction", credential=pending.id)
        assert form["warnings"], "the form gives no reason why every list is empty"
        with pytest.raises(ExactConnectorError):
            c.connector.options("divisions", pending.id)


# -- 6. errors that blame the wrong thing ------------------------------------------------------------


def test_options_with_division_none_uses_the_default(tmp_path: Path) -> None:
    """An engine passing the form's unset division (``division=None``) was told "Run Test
    Connect first: no division is known for this connection" with the hint "Fix the connector
    configuration", although Test Connect ran and the credential has a default division."""
    with bench(tmp_path) as c:
        found = c.connector.options("projects", c.credential_id, division=None)
        assert found
        assert found == c.connector.options("projects", c.credential_id, division=DIVISION)


def test_records_of_an_endpoint_without_a_single_key_names_the_endpoint_field(
    tmp_path: Path,
) -> None:
    """``records?endpoint=read/financial/RevenueListByYear`` (offered by endpoints?method=GET):
    a ConfigError with no path and the hint "Fix the connector configuration and try again",
    though the person only picked an endpoint whose records have no single key."""
    with bench(tmp_path) as c:
        with pytest.raises(ExactConnectorError) as raised:
            c.connector.options(
                "records",
                c.credential_id,
                division=DIVISION,
                endpoint="read/financial/RevenueListByYear",
            )
        error = raised.value
        assert error.category == "user", error.to_dict()
        assert error.errors and error.errors[0]["path"] == "$.endpoint", error.to_dict()


# -- 7. the options CLI prints Exact's text raw ------------------------------------------------------


def test_options_cli_table_does_not_print_control_characters_from_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record whose name holds a newline and an ANSI escape (data typed by anyone in the
    administration) is printed raw by ``exact-connector options accounts``: the escape reaches
    the terminal and the newline makes a second, fake row."""
    from exact_connector.cli import main

    key = base64.b64encode(generate_key()).decode()
    monkeypatch.setenv("EXACT_CONNECTOR_VAULT_KEY", key)
    monkeypatch.setenv("EXACT_CONNECTOR_ALLOW_SANDBOX", "1")
    monkeypatch.delenv("EXACT_CONNECTOR_HOME", raising=False)
    sb = Sandbox(auto_consent=True, limits=False)
    home = tmp_path / "vault"
    with serve(sb) as base_url:
        vault = Vault.open(home)
        try:
            connector = Connector(vault=vault, allow_sandbox=True)
            _sign_in(sb, connector, base_url, "cli")
            connector.close()
        finally:
            vault.close()
        table = sb.store.table(DIVISION, catalog().lookup("crm/Accounts"))
        table.insert({"Code": "777", "Name": "Evil\x1b[2J\nFAKE ROW"}, 0)

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(
                [
                    "options",
                    "accounts",
                    "--credential",
                    "cli",
                    "--division",
                    str(DIVISION),
                    "--search",
                    "Evil",
                    "--home",
                    str(home),
                ]
            )
    assert code == 0, err.getvalue()
    printed = out.getvalue()
    assert "\x1b" not in printed
    assert len(printed.splitlines()) == 2, printed  # the header and the one account
