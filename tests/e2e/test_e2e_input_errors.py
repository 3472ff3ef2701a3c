"""The "fix the input" families, end to end: nothing is sent when the input alone is wrong.

Each action gets a test per family. Where a family cannot arise for an action, the comment says
why and the test covers the nearest real case.
"""

from __future__ import annotations

import json

import pytest
from e2e_harness import (
    ACTIONS,
    DIVISION,
    MISSING_ID,
    TIME_TRANSACTIONS,
    UNGRANTED_DIVISION,
    World,
    assert_error,
    assert_refused,
)

pytestmark = pytest.mark.e2e

# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "broken", "paths"),
    [
        pytest.param(
            "create_project_time_transaction",
            {"division": DIVISION, "data": {"Project": "P0001", "Quantity": "two"}},
            {"$.data.Item", "$.data.Project", "$.data.Quantity"},
            id="create",
        ),
        pytest.param(
            "update_project_time_transaction",
            {"division": "0100001", "id": "not-a-guid", "data": {}},
            {"$.division", "$.id", "$.data"},
            id="update",
        ),
        pytest.param(
            "delete_endpoint_record",
            {"division": DIVISION, "endpoint": TIME_TRANSACTIONS, "id": "../../crm/Accounts"},
            {"$.id"},
            id="delete",
        ),
        pytest.param(
            "list_or_get_endpoint",
            {"division": DIVISION, "endpoint": "crm/Accounts", "limit": 0, "order_by": "; drop"},
            {"$.limit", "$.order_by"},
            id="list",
        ),
    ],
)
def test_bad_input_is_refused_with_every_path_and_nothing_sent(
    world: World, action: str, broken: dict[str, object], paths: set[str]
) -> None:
    """Schema errors come back all at once, by JSON path, without the values; no call is made."""
    calls = world.recorder.api_calls()

    error = assert_refused(world.run(action, broken))

    assert {item["path"] for item in error["details"]["errors"]} == paths
    assert "two" not in json.dumps(error) and "drop" not in json.dumps(error)
    assert world.recorder.api_calls() == calls


def test_an_unknown_select_field_is_refused_before_the_list_is_sent(world: World) -> None:
    """A field the endpoint does not have is a local error with its path, not an Exact 400."""
    inputs = {**world.valid_inputs("list_or_get_endpoint"), "select": ["ID", "Nonsense"]}

    error = assert_refused(world.run("list_or_get_endpoint", inputs))

    assert error["details"]["errors"][0]["path"] == "$.select[1]"


# -- unknown endpoint ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["create_project_time_transaction", "update_project_time_transaction"]
)
def test_time_transaction_fields_the_endpoint_lacks_are_refused(world: World, action: str) -> None:
    """Cannot arise as such: both actions are bound to project/TimeTransactions. The nearest
    real case is a Data Manager field that endpoint does not have (or may not write)."""
    inputs = world.valid_inputs(action)
    inputs["data"] = {**inputs["data"], "Nope": 1, "Created": "2026-01-01T00:00:00Z"}

    error = assert_refused(world.run(action, inputs))

    assert {item["path"] for item in error["details"]["errors"]} == {
        "$.data.Nope",
        "$.data.Created",
    }


@pytest.mark.parametrize("action", ["delete_endpoint_record", "list_or_get_endpoint"])
def test_a_reserved_service_name_is_an_unknown_endpoint(world: World, action: str) -> None:
    """A typed endpoint under sync/, bulk/, read/, current/ or system/ is refused unsent."""
    inputs = {**world.valid_inputs(action), "endpoint": "sync/Nope"}

    error = assert_refused(world.run(action, inputs), "unknown_endpoint")

    assert error["details"]["errors"][0]["path"] == "$.endpoint"
    assert world.recorder.api_calls() == 0


def test_a_typed_endpoint_exact_does_not_know_is_an_unknown_endpoint(world: World) -> None:
    """A list of a typed endpoint that Exact answers 404 can only be a missing endpoint."""
    error = assert_error(
        world.run("list_or_get_endpoint", {"division": DIVISION, "endpoint": "crm/Nope"}),
        "unknown_endpoint",
        "user",
        retryable=False,
        api_calls=1,
    )

    assert error["details"]["exact_message"] == "Resource not found for the segment 'Nope'."


# -- method not supported -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "endpoint"),
    [
        pytest.param("delete_endpoint_record", "crm/AccountClasses", id="delete-GET-only"),
        pytest.param("list_or_get_endpoint", "cashflow/ProcessPayments", id="list-POST-only"),
    ],
)
def test_an_endpoint_without_the_method_is_refused_unsent(
    world: World, action: str, endpoint: str
) -> None:
    """The catalog knows the endpoint's methods: no request is made to learn the 405."""
    inputs = {**world.valid_inputs(action), "endpoint": endpoint}

    error = assert_refused(world.run(action, inputs), "method_not_supported")

    assert error["details"]["endpoint"] == endpoint


@pytest.mark.parametrize(
    ("action", "method"),
    [
        ("create_project_time_transaction", "POST"),
        ("update_project_time_transaction", "PUT"),
    ],
)
def test_exact_refusing_the_method_is_method_not_supported(
    world: World, action: str, method: str
) -> None:
    """Cannot arise locally: project/TimeTransactions supports POST and PUT. The nearest real
    case is Exact answering 405 anyway (an endpoint withdrawn); nothing is written."""
    world.sb.faults.add("error", status=405, method=method, path_contains=TIME_TRANSACTIONS)
    before = world.sb.records(DIVISION, TIME_TRANSACTIONS)

    assert_error(
        world.run_valid(action),
        "method_not_supported",
        "user",
        retryable=False,
        api_calls=1,
    )

    assert world.sb.records(DIVISION, TIME_TRANSACTIONS) == before


# -- not found ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["update_project_time_transaction", "list_or_get_endpoint"])
def test_a_missing_record_is_not_found(world: World, action: str) -> None:
    """A well-formed key Exact does not have: one call, a 404, ``not_found``."""
    inputs = {**world.valid_inputs(action), "id": MISSING_ID}
    if action == "list_or_get_endpoint":
        inputs = {"division": DIVISION, "endpoint": "crm/Accounts", "id": MISSING_ID}

    error = assert_error(
        world.run(action, inputs), "not_found", "user", retryable=False, api_calls=1
    )

    assert error["details"]["status"] == 404


def test_deleting_a_missing_record_succeeds_as_already_absent(world: World) -> None:
    """The delete is idempotent: a key Exact does not have (404) is the state asked for."""
    inputs = {**world.valid_inputs("delete_endpoint_record"), "id": MISSING_ID}

    result = world.run("delete_endpoint_record", inputs)

    assert result["ok"] is True, result
    assert result["data"]["already_absent"] is True
    assert result["meta"]["api_calls"] == 1


def test_create_answered_404_is_not_found(world: World) -> None:
    """Cannot arise from the input: a POST goes to the collection, not to a key. The nearest
    real case is Exact answering 404 to it (the administration vanished); nothing is created."""
    world.sb.faults.add("error", status=404, method="POST", path_contains=TIME_TRANSACTIONS)
    before = world.count()

    assert_error(
        world.run_valid("create_project_time_transaction"),
        "not_found",
        "user",
        retryable=False,
        api_calls=1,
    )

    assert world.count() == before


# -- division not allowed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_a_division_the_connection_was_not_granted_is_refused_unsent(
    world: World, action: str
) -> None:
    """The division is checked against the credential's granted list before any call."""
    calls = world.recorder.api_calls()
    inputs = {**world.valid_inputs(action), "division": str(UNGRANTED_DIVISION)}

    error = assert_refused(world.run(action, inputs), "division_not_allowed")

    assert error["details"]["allowed"] == [100001, 100002, 100003]
    assert error["details"]["errors"][0]["path"] == "$.division"
    assert world.recorder.api_calls() == calls


def test_a_division_withdrawn_at_a_later_consent_is_refused_unsent(world: World) -> None:
    """Re-consented for fewer divisions: sign-in stores the new list, so nothing is sent."""
    world.sb.oauth.auto_consent = (DIVISION,)
    world.sign_in()
    inputs = {**world.valid_inputs("list_or_get_endpoint"), "division": 100002}

    error = assert_refused(world.run("list_or_get_endpoint", inputs), "division_not_allowed")

    assert error["details"]["allowed"] == [DIVISION]


def test_a_division_withdrawn_in_exact_since_sign_in_is_access_denied(world: World) -> None:
    """Exact's own 403 for a division no longer granted (the stored list is stale) is
    access_denied with Exact's reason."""
    world.sb.oauth.auto_consent = (DIVISION,)
    world.sign_in()
    credential = world.connector.credentials.get(world.credential_id)
    world.connector.vault.set_divisions(credential.id, [DIVISION, 100002], DIVISION)
    inputs = {**world.valid_inputs("list_or_get_endpoint"), "division": 100002}

    error = assert_error(
        world.run("list_or_get_endpoint", inputs),
        "access_denied",
        "config",
        retryable=False,
        api_calls=1,
    )

    assert error["details"]["reason"] == "NoDivisionAccess"
