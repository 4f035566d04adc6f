"""Escrow accounting under random interleavings of request, fulfil, batch, cancel, withdraw,
price changes and time: the agent always holds exactly the unpaid credits plus the open fees,
and in the end every wei sent is paid out to its caller (refund), a worker or the owner.

A Python ledger mirrors what each account is owed; one fresh embedded stack per example.
"""

from __future__ import annotations

from collections import Counter

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from contracts.chain import connect
from contracts.client import RequestInfo
from contracts.errors import RevertError
from tests.contracts.conftest import ROYALTY_BPS, TIMEOUT, build_stack

# Requests whose deadline is this close to the latest block are left alone: the next block's
# timestamp may land on either side of it.
MARGIN = 60
PRICES = [0, 1, 7, 10**15, 3 * 10**17 + 1]
OPEN, FULFILLED, CANCELLED = 1, 2, 3
ACCOUNTS = 7  # four callers (the owner among them), two workers, the relayer


def worker_share(fee: int) -> int:
    return fee * (10_000 - ROYALTY_BPS) // 10_000


class AgentEscrow(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = build_stack(connect())
        s = self.stack
        second_worker = s.others[2]
        s.register(second_worker)
        self.callers = [s.caller, s.others[0], s.others[1], s.owner]
        self.workers = [s.worker, second_worker]
        self.senders = [s.relayer, s.caller, s.worker]
        accounts = [*self.callers, *self.workers, s.relayer]
        self.accounts = list({a.address: a for a in accounts}.values())
        assert len(self.accounts) == ACCOUNTS
        self.open: dict[int, RequestInfo] = {}
        self.closed: dict[int, int] = {}
        self.sent = 0
        self.owed: Counter[str] = Counter()
        self.withdrawn: Counter[str] = Counter()
        self.refunds = self.earnings = self.royalties = 0

    # ------------------------------------------------------------ time and views

    def now(self) -> int:
        return self.stack.now()

    def fulfillable(self) -> list[int]:
        return sorted(i for i, r in self.open.items() if r.deadline >= self.now() + MARGIN)

    def expired(self) -> list[int]:
        return sorted(i for i, r in self.open.items() if r.deadline < self.now())

    def credit(self, account: str) -> int:
        return self.owed[account] - self.withdrawn[account]

    def sign(self, worker: LocalAccount, req: RequestInfo, output: bytes) -> bytes:
        return self.stack.sign(worker, req.id, req.input_hash, keccak(output))

    def settle_fulfilled(self, req: RequestInfo, worker: LocalAccount) -> None:
        del self.open[req.id]
        self.closed[req.id] = FULFILLED
        assert self.stack.agent.status(req.id) == FULFILLED
        share = worker_share(req.fee)
        self.owed[worker.address] += share
        self.owed[self.stack.owner.address] += req.fee - share
        self.earnings += share
        self.royalties += req.fee - share

    def settle_cancelled(self, req: RequestInfo) -> None:
        del self.open[req.id]
        self.closed[req.id] = CANCELLED
        assert self.stack.agent.status(req.id) == CANCELLED
        self.owed[req.caller] += req.fee
        self.refunds += req.fee

    # ------------------------------------------------------------ rules

    @rule(who=st.integers(0, 3), data=st.binary(max_size=48))
    def request(self, who: int, data: bytes) -> None:
        req = self.stack.agent.request(self.callers[who], data)
        assert req.id not in self.open and req.id not in self.closed
        assert req.fee == self.stack.agent.price()
        self.open[req.id] = req
        self.sent += req.fee

    @rule(price=st.sampled_from(PRICES))
    def set_price(self, price: int) -> None:
        self.stack.agent.set_price(self.stack.owner, price)

    @precondition(lambda self: self.fulfillable())
    @rule(data=st.data())
    def fulfil(self, data: st.DataObject) -> None:
        req = self.open[data.draw(st.sampled_from(self.fulfillable()), label="id")]
        worker = data.draw(st.sampled_from(self.workers), label="worker")
        sender = data.draw(st.sampled_from(self.senders), label="sender")
        output = data.draw(st.binary(max_size=48), label="output")
        self.stack.agent.fulfill(sender, req, output, self.sign(worker, req, output))
        self.settle_fulfilled(req, worker)

    @precondition(lambda self: self.fulfillable())
    @rule(data=st.data())
    def fulfil_batch(self, data: st.DataObject) -> None:
        ids = data.draw(
            st.lists(st.sampled_from(self.fulfillable()), min_size=1, max_size=4, unique=True),
            label="ids",
        )
        items = []
        signers = []
        for request_id in ids:
            req = self.open[request_id]
            worker = data.draw(st.sampled_from(self.workers), label="worker")
            output = data.draw(st.binary(max_size=16), label="output")
            items.append((req, output, self.sign(worker, req, output)))
            signers.append(worker)
        self.stack.agent.fulfill_batch(self.stack.relayer, items)
        for (req, _, _), worker in zip(items, signers, strict=True):
            self.settle_fulfilled(req, worker)

    @precondition(lambda self: self.expired())
    @rule(data=st.data())
    def fulfil_after_deadline_is_refused(self, data: st.DataObject) -> None:
        req = self.open[data.draw(st.sampled_from(self.expired()), label="id")]
        worker = data.draw(st.sampled_from(self.workers), label="worker")
        with pytest.raises(RevertError) as refused:
            self.stack.agent.fulfill(
                self.stack.relayer, req, b"late", self.sign(worker, req, b"late")
            )
        assert refused.value.error_name == "DeadlinePassed"
        assert self.stack.agent.status(req.id) == OPEN

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        req = self.open[data.draw(st.sampled_from(sorted(self.open)), label="id")]
        sender = data.draw(st.sampled_from(self.senders), label="sender")
        if req.deadline >= self.now():
            self.stack.chain.advance_time(req.deadline - self.now() + 1)
        self.stack.agent.cancel(sender, req)
        self.settle_cancelled(req)

    @precondition(lambda self: self.fulfillable())
    @rule(data=st.data())
    def cancel_before_deadline_is_refused(self, data: st.DataObject) -> None:
        req = self.open[data.draw(st.sampled_from(self.fulfillable()), label="id")]
        with pytest.raises(RevertError) as refused:
            self.stack.agent.cancel(self.stack.relayer, req)
        assert refused.value.error_name == "DeadlineNotReached"

    @rule(who=st.integers(0, ACCOUNTS - 1))
    def withdraw(self, who: int) -> None:
        account = self.accounts[who]
        expected = self.credit(account.address)
        if expected == 0:
            with pytest.raises(RevertError) as refused:
                self.stack.agent.withdraw(account)
            assert refused.value.error_name == "NothingToWithdraw"
            return
        self.withdraw_exactly(account, expected)

    @rule(seconds=st.sampled_from([1, 300, TIMEOUT // 2, TIMEOUT, TIMEOUT + MARGIN, 3 * TIMEOUT]))
    def advance_time(self, seconds: int) -> None:
        self.stack.chain.advance_time(seconds)

    def withdraw_exactly(self, account: LocalAccount, expected: int) -> None:
        """`account` withdraws and its wallet grows by exactly `expected` net of gas."""
        agent = self.stack.agent
        before = self.stack.balance(account.address)
        receipt = self.stack.tx.send(account, agent.contract.functions.withdraw())
        gas = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        assert self.stack.balance(account.address) == before + expected - gas
        self.withdrawn[account.address] += expected

    # ------------------------------------------------------------ invariants

    @invariant()
    def agent_holds_unpaid_credits_plus_open_fees(self) -> None:
        agent = self.stack.agent
        credits = {a.address: agent.credits(a.address) for a in self.accounts}
        assert credits == {address: self.credit(address) for address in credits}
        escrow = sum(r.fee for r in self.open.values())
        balance = self.stack.balance(agent.address)
        assert balance == sum(credits.values()) + escrow

    def assert_statuses(self) -> None:
        """Every request's on-chain status is the ledger's (once per example: one call each)."""
        expected = {request_id: OPEN for request_id in self.open} | self.closed
        assert {i: self.stack.agent.status(i) for i in expected} == expected

    def teardown(self) -> None:
        """Cancel what is still open, withdraw everything: the agent ends empty and every wei
        went to a caller's refund, a worker or the owner."""
        self.assert_statuses()
        if self.open:
            latest = max(r.deadline for r in self.open.values())
            self.stack.chain.advance_time(max(latest - self.now() + 1, 1))
            for req in list(self.open.values()):
                self.stack.agent.cancel(self.stack.relayer, req)
                self.settle_cancelled(req)
        for account in self.accounts:
            if self.credit(account.address):
                self.withdraw_exactly(account, self.credit(account.address))
        assert self.stack.balance(self.stack.agent.address) == 0
        assert self.withdrawn == self.owed
        assert self.refunds + self.earnings + self.royalties == self.sent
        assert sum(self.withdrawn.values()) == self.sent


AgentEscrow.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAgentEscrow = AgentEscrow.TestCase
