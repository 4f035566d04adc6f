"""`EventReader`: confirmed events in chain order from a cursor that survives the reader's and
the node's restarts without losing or repeating an event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_utils.crypto import keccak

from contracts.anvil import AnvilNode
from contracts.chain import EMBEDDED, connect
from contracts.client import RequestInfo
from contracts.errors import ChainUnavailableError
from contracts.events import ChainEvent, EventReader
from tests.contracts.conftest import TIMEOUT, Stack, build_stack, require_anvil

NAMES = ["Requested", "Fulfilled"]
# Topics once went to eth-tester as bytes, which matched no log there: both backends, always.
BOTH_BACKENDS = pytest.mark.parametrize("stack", [EMBEDDED, "anvil"], indirect=True)


def reader(stack: Stack, **kwargs: int) -> EventReader:
    return EventReader(stack.chain, stack.agent.contract, NAMES, **kwargs)


def summary(events: list[ChainEvent]) -> list[tuple[str, int]]:
    return [(event.name, int(event.args["id"])) for event in events]


def key(event: ChainEvent) -> tuple[str, int]:
    return event.tx_hash, event.log_index


def requests(stack: Stack, count: int, tag: str = "q") -> list[RequestInfo]:
    return [stack.agent.request(stack.caller, f"{tag}{i}".encode()) for i in range(count)]


def fulfil(stack: Stack, *reqs: RequestInfo) -> None:
    items = [
        (req, b"a", stack.sign(stack.worker, req.id, req.input_hash, keccak(b"a"))) for req in reqs
    ]
    stack.agent.fulfill_batch(stack.relayer, items)


def mine(stack: Stack, blocks: int) -> None:
    for _ in range(blocks):
        stack.chain.advance_time(1)


@BOTH_BACKENDS
def test_reads_requested_and_fulfilled_in_chain_order_from_the_cursor(stack: Stack) -> None:
    before = requests(stack, 1, "before")
    first, second, third = requests(stack, 3)
    fulfil(stack, third, first)  # one transaction: two logs in one block, in this order
    stack.chain.advance_time(TIMEOUT + 1)
    stack.agent.cancel(stack.relayer, second)  # a Cancelled event the reader does not ask for
    events = reader(stack, start=first.block_number).poll()
    assert summary(events) == [
        ("Requested", first.id), ("Requested", second.id), ("Requested", third.id),
        ("Fulfilled", third.id), ("Fulfilled", first.id),
    ]  # fmt: skip
    assert before[0].block_number < first.block_number
    assert [(e.block_number, e.log_index) for e in events] == sorted(
        (e.block_number, e.log_index) for e in events
    )
    assert {e.address for e in events} == {stack.agent.address}
    assert events[0].args["caller"] == stack.caller.address
    assert bytes(events[0].args["input"]) == first.input
    assert events[0].block_number == first.block_number
    assert events[3].args["worker"] == stack.worker.address


@BOTH_BACKENDS
def test_poll_returns_only_new_events_and_advances_the_cursor(stack: Stack) -> None:
    start = int(stack.chain.w3.eth.block_number) + 1
    events = reader(stack, start=start)
    assert events.poll() == []
    first = requests(stack, 2)
    assert summary(events.poll()) == [("Requested", r.id) for r in first]
    assert events.cursor == int(stack.chain.w3.eth.block_number) + 1
    assert events.poll() == []
    (later,) = requests(stack, 1, "later")
    assert summary(events.poll()) == [("Requested", later.id)]


@BOTH_BACKENDS
def test_holds_back_events_until_enough_confirmations(stack: Stack) -> None:
    start = int(stack.chain.w3.eth.block_number) + 1
    events = reader(stack, start=start, confirmations=3)
    (req,) = requests(stack, 1)
    assert events.poll() == []
    mine(stack, 2)
    assert events.poll() == []
    assert events.cursor == start  # nothing confirmed yet: the cursor has not moved past it
    mine(stack, 1)
    assert summary(events.poll()) == [("Requested", req.id)]
    assert events.cursor == req.block_number + 1
    mine(stack, 5)
    assert events.poll() == []


@BOTH_BACKENDS
def test_max_blocks_pages_through_the_range_without_gaps(stack: Stack) -> None:
    start = int(stack.chain.w3.eth.block_number) + 1
    reqs = requests(stack, 4)
    fulfil(stack, reqs[1])
    paged, polls = reader(stack, start=start, max_blocks=2), 0
    collected: list[ChainEvent] = []
    while paged.cursor <= int(stack.chain.w3.eth.block_number):
        collected += paged.poll()
        polls += 1
    assert polls == 3  # five blocks, two at a time
    assert collected == reader(stack, start=start).poll()
    assert summary(collected) == [("Requested", r.id) for r in reqs] + [("Fulfilled", reqs[1].id)]


@BOTH_BACKENDS
def test_restored_cursor_resumes_without_loss_or_duplicates(stack: Stack, tmp_path: Path) -> None:
    start = int(stack.chain.w3.eth.block_number) + 1
    saved = tmp_path / "cursor.json"
    first = reader(stack, start=start)
    reqs = requests(stack, 3)
    seen = first.poll()
    saved.write_text(json.dumps({"cursor": first.cursor}))
    reqs += requests(stack, 2, "later")
    fulfil(stack, reqs[0], reqs[4])
    resumed = reader(stack, start=json.loads(saved.read_text())["cursor"])
    rest = resumed.poll()
    everything = reader(stack, start=start).poll()
    assert seen + rest == everything
    assert len({key(e) for e in everything}) == len(everything) == 7
    assert summary(rest) == [("Requested", 4), ("Requested", 5), ("Fulfilled", 1), ("Fulfilled", 5)]


def test_unknown_event_names_are_refused(stack: Stack) -> None:
    with pytest.raises(ValueError, match="Requestd"):
        EventReader(stack.chain, stack.agent.contract, ["Requested", "Requestd"])
    with pytest.raises(ValueError, match="WorkerRegistered"):
        EventReader(stack.chain, stack.agent.contract, ["WorkerRegistered"])


@pytest.mark.anvil
def test_survives_a_node_restart_with_the_cursor_untouched(tmp_path: Path) -> None:
    require_anvil()
    state = tmp_path / "state.json"
    node = AnvilNode(state=state).start()
    try:
        stack = build_stack(connect(node.url))
        events = reader(stack, start=int(stack.chain.w3.eth.block_number) + 1)
        early = requests(stack, 3)
        assert summary(events.poll()) == [("Requested", r.id) for r in early]
        late = requests(stack, 2, "late")
        fulfil(stack, early[1], late[0])
        cursor = events.cursor

        node.stop()
        with pytest.raises(ChainUnavailableError):
            events.poll()
        assert events.cursor == cursor
        with pytest.raises(ChainUnavailableError):
            stack.agent.request(stack.caller, b"while down")

        node = AnvilNode(state=state, port=node.port).start()
        assert summary(events.poll()) == [
            ("Requested", late[0].id), ("Requested", late[1].id),
            ("Fulfilled", early[1].id), ("Fulfilled", late[0].id),
        ]  # fmt: skip
        assert events.poll() == []
        (after,) = requests(stack, 1, "after restart")
        assert summary(events.poll()) == [("Requested", after.id)]
    finally:
        node.stop()
