"""Fixtures for the in-process action tests: one signed-in connector per module on a sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from actions_harness import Bench, signed_in_bench


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """One sandbox, vault and connector for a whole module (property tests run many examples)."""
    with signed_in_bench(tmp_path_factory.mktemp("actions") / "vault") as made:
        yield made
