"""The whole life of a request, by the same code on the embedded chain and on Anvil."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from contracts.errors import RevertError
from tests.contracts.conftest import MEASUREMENT, PRICE, ROYALTY_BPS, Stack


def test_request_fulfil_withdraw(stack: Stack) -> None:
    agent, w3 = stack.agent, stack.chain.w3
    assert agent.measurement() == MEASUREMENT
    req = agent.request(stack.caller, b"encrypted question")
    assert (req.id, req.fee, req.caller) == (1, PRICE, stack.caller.address)
    assert w3.eth.get_balance(agent.address) == PRICE
    output = b"encrypted answer"
    signature = stack.sign(stack.worker, req.id, req.input_hash, keccak(output))
    receipt = agent.fulfill(stack.relayer, req, output, signature)
    (event,) = agent.contract.events.Fulfilled().process_receipt(receipt)
    assert (event["args"]["worker"], bytes(event["args"]["output"])) == (
        stack.worker.address,
        output,
    )
    assert agent.status(req.id) == 2
    worker_share = PRICE * (10_000 - ROYALTY_BPS) // 10_000
    assert agent.credits(stack.worker.address) == worker_share
    assert agent.credits(stack.owner.address) == PRICE - worker_share
    before = w3.eth.get_balance(stack.worker.address)
    assert agent.withdraw(stack.worker) == worker_share
    assert w3.eth.get_balance(stack.worker.address) > before  # share minus gas
    assert agent.withdraw(stack.owner) == PRICE - worker_share
    assert w3.eth.get_balance(agent.address) == 0


def test_request_cancelled_after_deadline_refunds_the_caller(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    with pytest.raises(RevertError) as early:
        stack.agent.cancel(stack.caller, req)
    assert early.value.error_name == "DeadlineNotReached"
    stack.chain.advance_time(3_601)
    stack.agent.cancel(stack.caller, req)
    assert stack.agent.status(req.id) == 3
    assert stack.agent.credits(stack.caller.address) == PRICE
    assert stack.agent.withdraw(stack.caller) == PRICE


def test_batch_fulfils_many_requests(stack: Stack) -> None:
    requests = [stack.agent.request(stack.caller, f"q{i}".encode()) for i in range(5)]
    items = []
    for req in requests:
        output = b"a" + req.input
        items.append(
            (req, output, stack.sign(stack.worker, req.id, req.input_hash, keccak(output)))
        )
    stack.agent.fulfill_batch(stack.relayer, items)
    assert [stack.agent.status(r.id) for r in requests] == [2] * 5
    assert stack.agent.credits(stack.worker.address) == 5 * PRICE * (10_000 - ROYALTY_BPS) // 10_000
