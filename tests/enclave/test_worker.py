"""The chain worker on the embedded chain: a deployed stack, an agent contract pinning the `sum`
test bundle, a worker registered for it, and the real `sum` runtime."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_utils.crypto import keccak

from agents.runtime import AgentRuntime
from attestation.token import agent_measurement_id
from contracts.chain import connect
from contracts.client import (
    TRANSFER_GAS,
    AgentClient,
    RequestInfo,
    create_agent,
    register,
)
from contracts.typed_data import Verdict, verdict_evidence, verdict_message
from enclave.envelope import open_response, seal_request
from enclave.errors import EnvelopeError
from enclave.keys import EnclaveKeys
from enclave.worker import (
    JobState,
    Worker,
    WorkerState,
    assigned_worker,
    may_take,
    onchain_envelope_context,
    onchain_response_context,
)
from enclave.worker.payout import GAS_RESERVE, Payout
from tests.contracts.conftest import PRICE, ROYALTY_BPS, TIMEOUT, Stack, build_stack

WORKER_SHARE = PRICE * (10_000 - ROYALTY_BPS) // 10_000


class SimulatedCrash(BaseException):
    """The process dies here: not an `Exception`, so nothing in the loop may swallow it."""


class CrashingState(WorkerState):
    """A state file whose process dies at its `crash_at`-th job transition (0-based), before
    that transition commits."""

    def __init__(self, path: Path, crash_at: int) -> None:
        super().__init__(path)
        self.crash_at = crash_at
        self.transitions = 0

    def transition(self, agent: str, request_id: int, state: JobState, **fields: Any) -> None:
        if self.transitions == self.crash_at:
            raise SimulatedCrash(f"killed before {state} of request {request_id}")
        self.transitions += 1
        super().transition(agent, request_id, state, **fields)


@dataclass
class Setup:
    stack: Stack
    agent: AgentClient
    keys: EnclaveKeys
    runtime: AgentRuntime
    db: Path

    def worker(self, state: WorkerState | None = None, **options: Any) -> Worker:
        agents = {self.agent.address: self.runtime}
        state = state or WorkerState(self.db)
        return Worker(self.stack.tx, self.keys, agents, state, sender=self.stack.relayer, **options)

    def request(self, value: dict[str, Any] | bytes) -> RequestInfo:
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        return self.agent.request(self.stack.caller, data)

    def fulfilled(self) -> list[dict[str, Any]]:
        """Every `Fulfilled` event of the agent: id, worker, output, tx hash."""
        events = self.agent.contract.events.Fulfilled().get_logs(from_block=0)
        return [{**dict(e["args"]), "tx": bytes(e["transactionHash"]).hex()} for e in events]


def register_keys(stack: Stack, address: str, measurement: bytes) -> None:
    verdict = Verdict(address, measurement, "UpToDate", b"\x22" * 32, stack.now() + 86_400)
    message = verdict_message(
        verdict, chain_id=stack.chain.chain_id, verifier=stack.deployment.verifier
    )
    signature = bytes(stack.signer.sign_message(message).signature)
    evidence = verdict_evidence(verdict, signature)
    register(stack.tx, stack.relayer, stack.deployment.registry, evidence)


@pytest.fixture
def setup(sum_agent: AgentRuntime, tmp_path: Path) -> Setup:
    stack = build_stack(connect())
    measurement = agent_measurement_id(sum_agent.measurement.digest)
    agent = create_agent(
        stack.tx, stack.owner, stack.deployment.factory, measurement=measurement, price=PRICE,
        royalty_bps=ROYALTY_BPS, registry=stack.deployment.registry, timeout=TIMEOUT,
    )  # fmt: skip
    keys = EnclaveKeys.generate()
    register_keys(stack, keys.address, measurement)
    return Setup(stack, agent, keys, sum_agent, tmp_path / "worker.db")


def expected_body(runtime: AgentRuntime, value: dict[str, Any]) -> bytes:
    return runtime.invoke(value).body


def test_fulfils_requests_with_the_agents_output_and_is_credited(setup: Setup) -> None:
    inputs: list[dict[str, Any]] = [
        {"values": [1, 2, 3]},
        {"values": [0.5], "note": "hi"},
        {"values": [-4, 4, 10]},
    ]
    requests = [setup.request(value) for value in inputs]

    report = setup.worker().step()

    assert (report.recorded, report.fulfilled, report.failed, report.errors) == (3, 3, 0, [])
    events = setup.fulfilled()
    assert [e["id"] for e in events] == [r.id for r in requests]
    assert [bytes(e["output"]) for e in events] == [expected_body(setup.runtime, v) for v in inputs]
    assert json.loads(bytes(events[0]["output"])) == {"sum": 6.0, "count": 3, "note": ""}
    assert {e["worker"] for e in events} == {setup.keys.address}
    assert setup.agent.credits(setup.keys.address) == 3 * WORKER_SHARE
    assert all(setup.agent.status(r.id) == 2 for r in requests)


def test_batches_ready_requests_in_batch_size_transactions(setup: Setup) -> None:
    for n in range(5):
        setup.request({"values": [n]})

    report = setup.worker(batch_size=2).step()

    assert (report.fulfilled, report.transactions) == (5, 3)
    txs = [e["tx"] for e in setup.fulfilled()]
    assert len(txs) == 5 and len(set(txs)) == 3


@pytest.mark.parametrize("crash_at", [0, 1, 2, 3, 4, 5, 6, 7, 8])
def test_a_crash_at_any_transition_loses_nothing_and_fulfils_once(
    setup: Setup, crash_at: int
) -> None:
    """3 requests make 9 transitions (running, submitted, done each); the first worker dies
    before transition `crash_at`, even after its fulfilment was mined (6, 7, 8)."""
    requests = [setup.request({"values": [n, 1]}) for n in range(3)]
    with pytest.raises(SimulatedCrash):
        setup.worker(CrashingState(setup.db, crash_at)).step()

    report = setup.worker().step()

    assert report.errors == []
    assert sorted(e["id"] for e in setup.fulfilled()) == [r.id for r in requests]
    state = WorkerState(setup.db)
    assert {j.state for j in state.jobs(setup.agent.address)} == {JobState.DONE}
    assert setup.agent.credits(setup.keys.address) == 3 * WORKER_SHARE


def test_a_crash_while_recording_reads_the_blocks_again(setup: Setup) -> None:
    class DiesOnRecord(WorkerState):
        def record(self, *args: Any, **kwargs: Any) -> int:
            raise SimulatedCrash("killed while recording")

    request = setup.request({"values": [7]})
    with pytest.raises(SimulatedCrash):
        setup.worker(DiesOnRecord(setup.db)).step()
    assert WorkerState(setup.db).cursor(setup.agent.address) is None

    assert setup.worker().step().fulfilled == 1
    assert [e["id"] for e in setup.fulfilled()] == [request.id]


def test_a_request_fulfilled_by_someone_else_is_done_not_an_error(setup: Setup) -> None:
    stack = setup.stack
    register_keys(
        stack, stack.worker.address, agent_measurement_id(setup.runtime.measurement.digest)
    )
    request = setup.request({"values": [2, 2]})
    body = expected_body(setup.runtime, {"values": [2, 2]})
    signature = stack.sign(
        stack.worker, request.id, request.input_hash, keccak(body), agent=setup.agent.address
    )
    setup.agent.fulfill(stack.others[0], request, body, signature)

    worker = setup.worker()
    report = worker.step()

    assert (report.closed_elsewhere, report.fulfilled, report.errors) == (1, 0, [])
    job = worker.state.job(setup.agent.address, request.id)
    assert job is not None and (job.state, job.detail) == (JobState.DONE, "closed_elsewhere")
    assert len(setup.fulfilled()) == 1


@pytest.mark.parametrize(
    "data",
    [b'{"values": "not numbers"}', b"\xff\xfe not utf-8", b"", b'{"values": [1]', b"\x01junk"],
    ids=["schema", "undecodable", "empty", "truncated", "bad-envelope"],
)
def test_bad_input_is_fulfilled_with_a_typed_error(setup: Setup, data: bytes) -> None:
    request = setup.request(data)

    report = setup.worker().step()

    assert (report.fulfilled, report.errors) == (1, [])
    (event,) = setup.fulfilled()
    code = "envelope_invalid" if data.startswith(b"\x01") else "input_invalid"
    assert bytes(event["output"]) == json.dumps({"error": {"code": code}}).replace(" ", "").encode()
    assert event["id"] == request.id


def sealed_input(setup: Setup, plain: bytes, to: bytes | None = None) -> tuple[bytes, Any]:
    """An on-chain input sealed to the worker (or `to`), and the caller's reply key."""
    chain_id = setup.stack.chain.chain_id
    context = onchain_envelope_context(setup.agent.address, setup.stack.caller.address, chain_id)
    reply = X25519PrivateKey.generate()
    reply_public = reply.public_key().public_bytes_raw()
    return seal_request(to or setup.keys.x25519_public, reply_public + plain, context), reply


def test_opens_enveloped_inputs_and_seals_the_answer_to_the_callers_reply_key(
    setup: Setup,
) -> None:
    data, reply = sealed_input(setup, b'{"values": [40, 2]}')
    request = setup.request(data)

    setup.worker().step()

    (event,) = setup.fulfilled()
    output = bytes(event["output"])
    assert output[:1] == b"\x01"  # an envelope, not the answer in the clear
    context = onchain_response_context(setup.agent.address, request.id, setup.stack.chain.chain_id)
    assert json.loads(open_response(reply, output, context))["sum"] == 42.0
    other = onchain_response_context(setup.agent.address, request.id + 1, context.chain_id)
    with pytest.raises(EnvelopeError):
        open_response(reply, output, other)


def test_an_envelope_without_a_reply_key_is_answered_with_an_error(setup: Setup) -> None:
    chain_id = setup.stack.chain.chain_id
    context = onchain_envelope_context(setup.agent.address, setup.stack.caller.address, chain_id)
    setup.request(seal_request(setup.keys.x25519_public, b"short", context))

    assert setup.worker().step().fulfilled == 1

    (event,) = setup.fulfilled()
    assert json.loads(bytes(event["output"])) == {"error": {"code": "envelope_invalid"}}


def test_with_peers_an_envelope_goes_to_the_worker_holding_its_key(setup: Setup) -> None:
    """Sealed to this worker but assigned to a peer: taken at once. Sealed to the peer but
    assigned here: left to the peer until the grace period ends, then answered as invalid."""
    now = [1_000.0]
    me, agent = setup.keys.address, setup.agent.address
    peer_keys = EnclaveKeys.generate()
    peer = peer_keys.address
    ours, _ = sealed_input(setup, b'{"values": [1]}')
    theirs, _ = sealed_input(setup, b'{"values": [2]}', to=peer_keys.x25519_public)
    by_owner: dict[str, Any] = {}
    while len(by_owner) < 2:  # one request assigned to the peer, one to this worker
        data = ours if peer not in by_owner else theirs
        request = setup.request(data)
        owner = assigned_worker(request.id, [me, peer], agent=agent)
        if owner.lower() == peer.lower() and data == ours:
            by_owner[peer] = request
        elif owner.lower() == me.lower() and data == theirs:
            by_owner[me] = request
    worker = setup.worker(peers=lambda _agent: [me, peer], grace_s=30, clock=lambda: now[0])

    worker.step()
    answered = {e["id"]: bytes(e["output"]) for e in setup.fulfilled()}
    assert by_owner[peer].id in answered and by_owner[me].id not in answered

    now[0] += 30
    worker.step()
    answered = {e["id"]: bytes(e["output"]) for e in setup.fulfilled()}
    assert json.loads(answered[by_owner[me].id]) == {"error": {"code": "envelope_invalid"}}


def test_an_expired_request_fails_as_expired(setup: Setup) -> None:
    request = setup.request({"values": [1]})
    setup.stack.chain.advance_time(TIMEOUT + 60)

    worker = setup.worker()
    report = worker.step()

    assert (report.failed, report.fulfilled) == (1, 0)
    job = worker.state.job(setup.agent.address, request.id)
    assert job is not None and (job.state, job.detail) == (JobState.FAILED, "expired")
    assert setup.fulfilled() == []


def test_the_cursor_persists_and_waits_for_confirmations(setup: Setup) -> None:
    tester = setup.stack.chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    request = setup.request({"values": [3]})

    assert setup.worker(confirmations=2).step().recorded == 0
    tester.mine_blocks(2)
    assert setup.worker(confirmations=2).step().fulfilled == 1
    cursor = WorkerState(setup.db).cursor(setup.agent.address)
    assert cursor is not None and cursor > request.block_number

    restarted = setup.worker(confirmations=2)
    tester.mine_blocks(3)
    assert restarted.step().recorded == 0
    assert len(setup.fulfilled()) == 1


def test_assignment_is_deterministic_and_spreads_requests() -> None:
    peers = [f"0x{n:040x}" for n in range(1, 5)]
    chosen = [assigned_worker(rid, peers) for rid in range(400)]
    assert chosen == [assigned_worker(rid, list(reversed(peers))) for rid in range(400)]
    assert all(chosen.count(p) > 50 for p in peers)
    # removing one peer moves only the requests it had
    rest = peers[1:]
    assert all(assigned_worker(r, rest) == c for r, c in enumerate(chosen) if c != peers[0])


def test_others_may_take_a_request_after_the_grace_period() -> None:
    peers = [f"0x{n:040x}" for n in range(1, 4)]
    owner = assigned_worker(9, peers)
    other = next(p for p in peers if p != owner)
    assert may_take(owner, 9, peers, waited_s=0, grace_s=30)
    assert not may_take(other, 9, peers, waited_s=29, grace_s=30)
    assert may_take(other, 9, peers, waited_s=30, grace_s=30)
    assert may_take(other, 9, None, waited_s=0, grace_s=30)


def test_a_worker_defers_to_the_assigned_peer_until_the_grace_period(setup: Setup) -> None:
    now = [1_000.0]
    request = setup.request({"values": [5]})
    me, agent = setup.keys.address, setup.agent.address
    candidates = (f"0x{n:040x}" for n in range(1, 1_000))
    peer = next(p for p in candidates if assigned_worker(request.id, [me, p], agent=agent) == p)
    worker = setup.worker(peers=[me, peer], grace_s=30, clock=lambda: now[0])

    assert worker.step().recorded == 1
    assert setup.fulfilled() == []
    now[0] += 30
    assert worker.step().fulfilled == 1


def test_a_sweep_moves_the_workers_earnings_to_the_payout_address(setup: Setup) -> None:
    for values in ([1], [2, 3]):
        setup.request({"values": values})
    setup.worker().step()
    earned = setup.agent.credits(setup.keys.address)
    assert earned == 2 * WORKER_SHARE
    payee = Account.create().address
    w3 = setup.stack.chain.w3
    payout = Payout(setup.stack.tx, setup.keys, [setup.agent.address], payee, setup.stack.relayer)

    swept = payout.sweep()

    assert swept.withdrawn == {setup.agent.address: earned}
    assert setup.agent.credits(setup.keys.address) == 0
    assert w3.eth.get_balance(payee) == swept.forwarded
    reserve = (GAS_RESERVE + TRANSFER_GAS) * w3.eth.gas_price
    assert earned - reserve <= swept.forwarded <= earned
    again = payout.sweep()  # nothing new: nothing withdrawn, the gas reserve stays
    assert (again.withdrawn, again.forwarded) == ({}, 0)
