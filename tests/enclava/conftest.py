"""Shared fixtures of the CLI tests: a real Anvil node (one per test module) and its chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contracts.anvil import AnvilNode
from contracts.chain import Chain, connect
from tests.contracts.conftest import require_anvil


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    require_anvil()
    with AnvilNode() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def chain(node: AnvilNode) -> Chain:
    return connect(node.url)
