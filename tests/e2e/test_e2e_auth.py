"""Reauthorization end to end: a refresh token Exact no longer accepts stops every action.

Another party redeems the connector's refresh token first (a copied vault, a second tool). When
the connector's access token expires it presents the now-used refresh token; Exact answers
"Old refresh token used." and revokes the whole token family. Only a new sign-in helps.
"""

from __future__ import annotations

import pytest
from e2e_harness import ACTIONS, World, assert_error

pytestmark = pytest.mark.e2e


def _revoke(world: World) -> None:
    world.clock.advance(600.0)  # the access token has expired; a refresh is due and allowed
    world.steal_refresh()
    world.recorder.reset()
    world.sb.reset_counters()


@pytest.mark.parametrize("action", ACTIONS)
def test_a_used_refresh_token_answers_reauth_required(world: World, action: str) -> None:
    """reauth_required (config, not retryable); no API call reached Exact; the credential says so."""
    _revoke(world)

    _assert_reauth_required(world, action)

    assert world.recorder.api_calls() == 0
    assert world.recorder.token == 1
    assert world.sb.counters.refresh_reuse == 1
    assert world.credential.status == "needs_reauth"


@pytest.mark.parametrize("action", ACTIONS)
def test_after_reauth_required_nothing_is_sent_until_sign_in(world: World, action: str) -> None:
    """A credential marked needs_reauth fails at once: no token call, no API call."""
    _revoke(world)
    world.run_valid("list_or_get_endpoint")
    world.recorder.reset()

    _assert_reauth_required(world, action)
    assert (world.recorder.token, world.recorder.api_calls()) == (0, 0)


def test_signing_in_again_restores_the_connection(world: World) -> None:
    """Reconnect: a new consent makes the same credential work again."""
    _revoke(world)
    world.run_valid("list_or_get_endpoint")

    world.sign_in()
    result = world.run_valid("list_or_get_endpoint")

    assert result["ok"] is True, result
    assert world.credential.status == "active"


def _assert_reauth_required(world: World, action: str) -> None:
    """The action failed as reauth_required (config, not retryable) before any API call."""
    error = ("reauth_required", "config")
    assert_error(world.run_valid(action), *error, retryable=False, api_calls=0)
