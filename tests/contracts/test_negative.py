"""Every misuse of the contracts is refused with its own custom error and moves no wei, on the
embedded chain and on Anvil alike.

`assert_refused` snapshots every balance the test can see (each agent's balance, the credit of
every development account and attacker contract there, and their wallets), runs the action,
checks the custom error's name and compares the snapshot: a refusal that moved funds fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import Signature
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from contracts import artifacts
from contracts.client import AgentClient, RequestInfo, create_agent, register, request_from_event
from contracts.errors import RevertError
from contracts.revert import RevertDecoder
from tests.contracts.conftest import MEASUREMENT, PRICE, ROYALTY_BPS, TIMEOUT, Stack

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
OTHER_MEASUREMENT = bytes.fromhex("33" * 32)
OUTPUT = b"encrypted answer"
WORKER_SHARE = PRICE * (10_000 - ROYALTY_BPS) // 10_000
AGENT_ERRORS = RevertDecoder([artifacts.load("Agent").abi])
OPEN, FULFILLED, CANCELLED = 1, 2, 3


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Funds:
    """Each agent's balance and the credit every watched account holds there; each wallet."""

    agents: dict[str, tuple[int, dict[str, int]]]
    wallets: dict[str, int]


def funds(stack: Stack, agents: Sequence[AgentClient], extra: Sequence[str] = ()) -> Funds:
    watched = [account.address for account in stack.chain.dev_accounts()] + list(extra)
    return Funds(
        agents={
            agent.address: (
                stack.balance(agent.address),
                {address: agent.credits(address) for address in watched},
            )
            for agent in agents
        },
        wallets={address: stack.balance(address) for address in watched},
    )


def assert_refused(
    stack: Stack,
    error_name: str,
    action: Callable[[], object],
    *,
    agents: Sequence[AgentClient] = (),
    extra: Sequence[str] = (),
) -> RevertError:
    """`action` reverts with custom error `error_name` and no watched balance or credit moves."""
    watched = list(agents) or [stack.agent]
    before = funds(stack, watched, extra)
    with pytest.raises(RevertError) as refused:
        action()
    assert refused.value.error_name == error_name, refused.value.message
    assert funds(stack, watched, extra) == before
    return refused.value


def args(error: RevertError) -> tuple[Any, ...]:
    """The error's arguments, addresses checksummed (the decoder returns them in lower case)."""
    return tuple(
        to_checksum_address(arg) if isinstance(arg, str) and is_address(arg) else arg
        for arg in error.args_decoded
    )


def signed(
    stack: Stack,
    req: RequestInfo,
    *,
    worker: LocalAccount | None = None,
    output: bytes = OUTPUT,
    agent: str | None = None,
    chain_id: int | None = None,
) -> bytes:
    return stack.sign(
        worker or stack.worker, req.id, req.input_hash, keccak(output), agent, chain_id
    )


def fulfil(
    stack: Stack, req: RequestInfo, signature: bytes, agent: AgentClient | None = None
) -> TxReceipt:
    return (agent or stack.agent).fulfill(stack.relayer, req, OUTPUT, signature)


def high_s(signature: bytes) -> bytes:
    """The same (r, s, v) signature's malleated twin: s' = n - s with the other parity."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def verifier(stack: Stack) -> Any:
    """The verifier's contract functions."""
    return stack.tx.contract("SignedVerdictVerifier", stack.deployment.verifier).functions


def registry(stack: Stack) -> Any:
    """The registry's contract functions."""
    return stack.tx.contract("WorkerRegistry", stack.deployment.registry).functions


def registered_until(stack: Stack, worker: str, measurement: bytes = MEASUREMENT) -> int:
    reg = stack.tx.call(registry(stack).registrationFor(worker, measurement))
    return int(reg[1])


# ---------------------------------------------------------------- workers


def test_rejects_fulfilment_by_unregistered_worker(stack: Stack) -> None:
    stranger = stack.others[0]
    req = stack.agent.request(stack.caller, b"q")
    error = assert_refused(
        stack,
        "WorkerNotRegistered",
        lambda: fulfil(stack, req, signed(stack, req, worker=stranger)),
    )
    assert args(error) == (stranger.address,)
    assert stack.agent.status(req.id) == OPEN


def test_rejects_fulfilment_after_registration_expired(stack: Stack) -> None:
    worker = stack.others[0]
    stack.register(worker, ttl=60)
    expires_at = registered_until(stack, worker.address)
    req = stack.agent.request(stack.caller, b"q")
    stack.chain.advance_time(120)
    error = assert_refused(
        stack, "RegistrationExpired", lambda: fulfil(stack, req, signed(stack, req, worker=worker))
    )
    assert args(error) == (worker.address, expires_at)


def test_rejects_worker_registered_for_another_measurement(stack: Stack) -> None:
    worker = stack.others[0]
    stack.register(worker, measurement=OTHER_MEASUREMENT)
    req = stack.agent.request(stack.caller, b"q")
    error = assert_refused(
        stack, "WrongMeasurement", lambda: fulfil(stack, req, signed(stack, req, worker=worker))
    )
    assert args(error) == (worker.address, OTHER_MEASUREMENT)


# ---------------------------------------------------------------- signatures

BAD_SIGNATURES: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda sig: b"",
    "garbage": lambda sig: b"\xff" * 65,
    "truncated": lambda sig: sig[:64],
    "too-long": lambda sig: sig + b"\x00",
    "zero-r-and-s": lambda sig: bytes(64) + sig[64:],
    "v-not-27-or-28": lambda sig: sig[:64] + bytes([sig[64] - 27]),
    "high-s": high_s,
}


@pytest.mark.parametrize("form", list(BAD_SIGNATURES))
def test_rejects_malformed_signature_and_keeps_the_request_open(stack: Stack, form: str) -> None:
    req = stack.agent.request(stack.caller, b"q")
    good = signed(stack, req)
    bad = BAD_SIGNATURES[form](good)
    assert_refused(stack, "BadSignature", lambda: fulfil(stack, req, bad))
    fulfil(stack, req, good)
    assert stack.agent.status(req.id) == FULFILLED


def test_high_s_twin_is_a_valid_ecdsa_signature_of_the_worker(stack: Stack) -> None:
    """The premise of the high-s case: plain ECDSA accepts the twin, only the contract's
    canonical-s rule refuses it."""
    req = stack.agent.request(stack.caller, b"q")
    twin = high_s(signed(stack, req))
    call = stack.agent.contract.functions.fulfillmentDigest(req.id, req.input_hash, keccak(OUTPUT))
    digest = bytes(stack.tx.call(call))
    r, s = int.from_bytes(twin[:32], "big"), int.from_bytes(twin[32:64], "big")
    public = Signature(vrs=(twin[64] - 27, r, s)).recover_public_key_from_msg_hash(digest)
    assert public.to_checksum_address() == stack.worker.address


def test_rejects_signature_by_another_key(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    by_signer = signed(stack, req, worker=stack.signer)  # trusted for verdicts, not a worker
    error = assert_refused(stack, "WorkerNotRegistered", lambda: fulfil(stack, req, by_signer))
    assert args(error) == (stack.signer.address,)


def test_rejects_signature_replayed_on_another_agent_with_the_same_measurement(
    stack: Stack,
) -> None:
    twin = create_agent(
        stack.tx, stack.owner, stack.deployment.factory, measurement=MEASUREMENT, price=PRICE,
        royalty_bps=ROYALTY_BPS, registry=stack.deployment.registry, timeout=TIMEOUT,
    )  # fmt: skip
    first = stack.agent.request(stack.caller, b"same question")
    second = twin.request(stack.caller, b"same question")
    assert (first.id, first.input_hash) == (second.id, second.input_hash)
    signature = signed(stack, first)
    fulfil(stack, first, signature)
    error = assert_refused(
        stack,
        "WorkerNotRegistered",
        lambda: fulfil(stack, second, signature, agent=twin),
        agents=[stack.agent, twin],
    )
    assert args(error) != (stack.worker.address,)
    assert twin.status(second.id) == OPEN


def test_rejects_signature_for_another_chain_id(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    foreign = signed(stack, req, chain_id=stack.chain.chain_id + 1)
    error = assert_refused(stack, "WorkerNotRegistered", lambda: fulfil(stack, req, foreign))
    assert args(error) != (stack.worker.address,)


# ---------------------------------------------------------------- request life


def test_rejects_double_fulfilment(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    signature = signed(stack, req)
    fulfil(stack, req, signature)
    error = assert_refused(stack, "RequestNotOpen", lambda: fulfil(stack, req, signature))
    assert args(error) == (req.id,)


def test_rejects_batch_fulfilling_one_request_twice(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    item = (req, OUTPUT, signed(stack, req))
    assert_refused(
        stack, "RequestNotOpen", lambda: stack.agent.fulfill_batch(stack.relayer, [item, item])
    )
    assert stack.agent.status(req.id) == OPEN


def test_one_bad_item_reverts_the_whole_batch(stack: Stack) -> None:
    reqs = [stack.agent.request(stack.caller, f"q{i}".encode()) for i in range(3)]
    items = [(req, OUTPUT, signed(stack, req)) for req in reqs]
    items[1] = (reqs[1], OUTPUT, signed(stack, reqs[1], worker=stack.others[0]))
    assert_refused(
        stack, "WorkerNotRegistered", lambda: stack.agent.fulfill_batch(stack.relayer, items)
    )
    assert [stack.agent.status(req.id) for req in reqs] == [OPEN] * 3


def test_rejects_unknown_request_id(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    ghost = dataclasses.replace(req, id=req.id + 1)
    error = assert_refused(
        stack, "RequestNotOpen", lambda: fulfil(stack, ghost, signed(stack, ghost))
    )
    assert args(error) == (ghost.id,)


def test_rejects_cancel_before_deadline(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    assert_refused(stack, "DeadlineNotReached", lambda: stack.agent.cancel(stack.caller, req))
    assert stack.agent.status(req.id) == OPEN


def test_rejects_fulfilment_after_cancel(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    signature = signed(stack, req)
    stack.chain.advance_time(TIMEOUT + 10)
    stack.agent.cancel(stack.relayer, req)
    assert_refused(stack, "RequestNotOpen", lambda: fulfil(stack, req, signature))
    assert_refused(stack, "RequestNotOpen", lambda: stack.agent.cancel(stack.caller, req))
    assert stack.agent.status(req.id) == CANCELLED


def test_rejects_cancel_after_fulfilment(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    fulfil(stack, req, signed(stack, req))
    stack.chain.advance_time(TIMEOUT + 10)
    assert_refused(stack, "RequestNotOpen", lambda: stack.agent.cancel(stack.caller, req))


def test_rejects_fulfilment_after_deadline(stack: Stack) -> None:
    req = stack.agent.request(stack.caller, b"q")
    signature = signed(stack, req)
    stack.chain.advance_time(TIMEOUT + 10)
    assert_refused(stack, "DeadlinePassed", lambda: fulfil(stack, req, signature))
    assert stack.agent.status(req.id) == OPEN


TAMPERED: dict[str, Callable[[RequestInfo, Stack], RequestInfo]] = {
    "caller": lambda req, s: dataclasses.replace(req, caller=s.relayer.address),
    "fee-lower": lambda req, s: dataclasses.replace(req, fee=req.fee - 1),
    "fee-higher": lambda req, s: dataclasses.replace(req, fee=req.fee + 1),
    "deadline": lambda req, s: dataclasses.replace(req, deadline=req.deadline + TIMEOUT),
    "input": lambda req, s: dataclasses.replace(req, input=b"another question"),
}


@pytest.mark.parametrize("field", list(TAMPERED))
def test_rejects_fulfilment_with_tampered_request_fields(stack: Stack, field: str) -> None:
    req = stack.agent.request(stack.caller, b"q")
    tampered = TAMPERED[field](req, stack)
    signature = signed(stack, tampered)  # a valid signature over the tampered fields
    error = assert_refused(stack, "RequestMismatch", lambda: fulfil(stack, tampered, signature))
    assert args(error) == (req.id,)


@pytest.mark.parametrize("field", list(TAMPERED))
def test_rejects_cancel_with_tampered_request_fields(stack: Stack, field: str) -> None:
    req = stack.agent.request(stack.caller, b"q")
    stack.chain.advance_time(TIMEOUT + 10)
    tampered = TAMPERED[field](req, stack)
    assert_refused(stack, "RequestMismatch", lambda: stack.agent.cancel(stack.relayer, tampered))
    assert stack.agent.status(req.id) == OPEN


# ---------------------------------------------------------------- fees and pause


@pytest.mark.parametrize("sent", [0, PRICE - 1, PRICE + 1, 2 * PRICE])
def test_rejects_wrong_fee(stack: Stack, sent: int) -> None:
    error = assert_refused(
        stack, "WrongFee", lambda: stack.agent.request(stack.caller, b"q", fee=sent)
    )
    assert args(error) == (PRICE, sent)


def test_rejects_requests_while_paused(stack: Stack) -> None:
    stack.agent.set_paused(stack.owner, True)
    assert_refused(stack, "Paused", lambda: stack.agent.request(stack.caller, b"q"))


# ---------------------------------------------------------------- admin


def admin_state(stack: Stack) -> tuple[Any, ...]:
    agent = stack.agent.contract.functions
    calls = [
        agent.owner(), agent.price(), agent.paused(),
        verifier(stack).owner(), verifier(stack).isSigner(stack.signer.address),
        verifier(stack).isSigner(stack.caller.address),
        registry(stack).verifier(), registry(stack).owner(),
    ]  # fmt: skip
    return tuple(stack.tx.call(call) for call in calls)


ADMIN_CALLS: dict[str, Callable[[Stack], Any]] = {
    "agent.setPrice": lambda s: s.agent.contract.functions.setPrice(1),
    "agent.setPaused": lambda s: s.agent.contract.functions.setPaused(True),
    "agent.transferOwnership": lambda s: s.agent.contract.functions.transferOwnership(
        s.caller.address
    ),
    "verifier.addSigner": lambda s: verifier(s).addSigner(s.caller.address),
    "verifier.removeSigner": lambda s: verifier(s).removeSigner(s.signer.address),
    "verifier.transferOwnership": lambda s: verifier(s).transferOwnership(s.caller.address),
    "registry.setVerifier": lambda s: registry(s).setVerifier(s.caller.address),
    "registry.transferOwnership": lambda s: registry(s).transferOwnership(s.caller.address),
}


@pytest.mark.parametrize("call", list(ADMIN_CALLS))
def test_rejects_admin_call_by_non_owner(stack: Stack, call: str) -> None:
    req = stack.agent.request(stack.caller, b"q")
    fulfil(stack, req, signed(stack, req))  # royalties a stolen ownership would carry
    before = admin_state(stack)
    assert_refused(stack, "NotOwner", lambda: stack.tx.send(stack.caller, ADMIN_CALLS[call](stack)))
    assert admin_state(stack) == before


# ---------------------------------------------------------------- registration


def submit(stack: Stack, evidence: bytes) -> None:
    register(stack.tx, stack.relayer, stack.deployment.registry, evidence)


def test_rejects_verdict_signed_by_unknown_signer(stack: Stack) -> None:
    worker, impostor = stack.others[0], stack.others[1]
    evidence = stack.evidence(worker, signer=impostor)
    error = assert_refused(stack, "UnknownSigner", lambda: submit(stack, evidence))
    assert args(error) == (impostor.address,)
    assert registered_until(stack, worker.address) == 0


def test_rejects_verdict_with_malformed_signature(stack: Stack) -> None:
    worker = stack.others[0]
    evidence = stack.evidence(worker)
    garbage = evidence[:-96] + b"\xff" * 65 + evidence[-31:]  # the 65 signature bytes
    assert len(garbage) == len(evidence)
    assert_refused(stack, "BadSignature", lambda: submit(stack, garbage))
    assert registered_until(stack, worker.address) == 0


def test_rejects_expired_verdict(stack: Stack) -> None:
    worker = stack.others[0]
    assert_refused(stack, "VerdictExpired", lambda: submit(stack, stack.evidence(worker, ttl=-1)))
    assert registered_until(stack, worker.address) == 0


def test_rejects_replayed_registration(stack: Stack) -> None:
    worker = stack.others[0]
    evidence = stack.evidence(worker)
    submit(stack, evidence)
    current = registered_until(stack, worker.address)
    error = assert_refused(stack, "StaleRegistration", lambda: submit(stack, evidence))
    assert args(error) == (current,)
    assert registered_until(stack, worker.address) == current


def test_rejects_older_verdict_that_would_shorten_a_registration(stack: Stack) -> None:
    current = registered_until(stack, stack.worker.address)
    older = stack.evidence(stack.worker, ttl=600)
    error = assert_refused(stack, "StaleRegistration", lambda: submit(stack, older))
    assert args(error) == (current,)
    assert registered_until(stack, stack.worker.address) == current


# ---------------------------------------------------------------- reentrancy


@dataclass
class Attacker:
    contract: Contract
    operator: LocalAccount

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def send(self, stack: Stack, fn: Any, value: int = 0) -> Any:
        return stack.tx.send(self.operator, fn, value)

    def arm(
        self, stack: Stack, agent: AgentClient, fn: str, args: list[Any], value: int = 0
    ) -> None:
        data = agent.contract.encode_abi(fn, args)
        self.send(stack, self.contract.functions.arm(agent.address, data, value))

    def reentry(self, stack: Stack) -> tuple[bool, bool, RevertError]:
        """(re-entered, re-entry succeeded, the re-entry's revert decoded)."""
        fns = self.contract.functions
        result = bytes(stack.tx.call(fns.reentryResult()))
        return (
            stack.tx.call(fns.reentered()),
            stack.tx.call(fns.reentryOk()),
            AGENT_ERRORS.decode(result),
        )


def deploy_attacker(stack: Stack, name: str) -> Attacker:
    operator = stack.others[4]
    return Attacker(stack.tx.deploy(operator, name), operator)


def request_through(stack: Stack, attacker: Attacker, input_: bytes) -> RequestInfo:
    fn = attacker.contract.functions.request(stack.agent.address, input_)
    receipt = attacker.send(stack, fn, PRICE)
    (event,) = stack.agent.contract.events.Requested().process_receipt(receipt, errors=DISCARD)
    return request_from_event(event["args"], int(receipt["blockNumber"]))


def others_money(stack: Stack, agent: AgentClient) -> None:
    """Funds of others in `agent`: one fulfilled request (worker and owner credit), one open."""
    req = agent.request(stack.caller, b"someone else's question")
    fulfil(stack, req, signed(stack, req, agent=agent.address), agent=agent)
    agent.request(stack.caller, b"someone else's open question")


def refunded_attacker(stack: Stack, open_requests: int = 0) -> tuple[Attacker, list[RequestInfo]]:
    """A `ReentrantCaller` owed one refund (PRICE), with `open_requests` more requests past their
    deadline, in an agent that also holds others' funds."""
    attacker = deploy_attacker(stack, "ReentrantCaller")
    reqs = [request_through(stack, attacker, f"q{i}".encode()) for i in range(1 + open_requests)]
    others_money(stack, stack.agent)
    stack.chain.advance_time(TIMEOUT + 10)
    stack.agent.cancel(stack.relayer, reqs[0])
    assert stack.agent.credits(attacker.address) == PRICE
    return attacker, reqs[1:]


def withdraw_pays_once(stack: Stack, attacker: Attacker, agent: AgentClient, owed: int) -> None:
    """`attacker` withdraws: it receives exactly `owed` in one `Withdrawn`, the re-entry it
    armed was refused with `Reentrancy`, and nobody else's credit moved."""
    others_before = {a.address: agent.credits(a.address) for a in stack.chain.dev_accounts()}
    agent_before = stack.balance(agent.address)
    attacker_before = stack.balance(attacker.address)
    receipt = attacker.send(stack, attacker.contract.functions.withdraw(agent.address))
    withdrawn = agent.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["account"], e["args"]["amount"]) for e in withdrawn] == [
        (attacker.address, owed)
    ]
    reentered, ok, error = attacker.reentry(stack)
    assert (reentered, ok, error.error_name) == (True, False, "Reentrancy")
    assert stack.balance(attacker.address) == attacker_before + owed
    assert stack.balance(agent.address) == agent_before - owed
    assert agent.credits(attacker.address) == 0
    assert {a: agent.credits(a) for a in others_before} == others_before


def test_reentrant_caller_cannot_withdraw_twice(stack: Stack) -> None:
    attacker, _ = refunded_attacker(stack)
    attacker.arm(stack, stack.agent, "withdraw", [])
    withdraw_pays_once(stack, attacker, stack.agent, PRICE)
    assert_refused(
        stack,
        "NothingToWithdraw",
        lambda: attacker.send(stack, attacker.contract.functions.withdraw(stack.agent.address)),
        extra=[attacker.address],
    )


def test_reentrant_caller_cannot_cancel_during_withdraw(stack: Stack) -> None:
    attacker, (pending,) = refunded_attacker(stack, open_requests=1)
    attacker.arm(stack, stack.agent, "cancel", [pending.id, pending.as_struct()])
    withdraw_pays_once(stack, attacker, stack.agent, PRICE)
    assert stack.agent.status(pending.id) == OPEN


def test_reentrant_caller_cannot_request_during_withdraw(stack: Stack) -> None:
    attacker, _ = refunded_attacker(stack)
    count = stack.tx.call(stack.agent.contract.functions.requestCount())
    attacker.arm(stack, stack.agent, "request", [b"again"], value=PRICE)
    withdraw_pays_once(stack, attacker, stack.agent, PRICE)
    assert stack.tx.call(stack.agent.contract.functions.requestCount()) == count


def test_failed_payout_keeps_the_credit(stack: Stack) -> None:
    attacker, _ = refunded_attacker(stack)
    attacker.send(stack, attacker.contract.functions.setRejectPayments(True))
    assert_refused(
        stack,
        "TransferFailed",
        lambda: attacker.send(stack, attacker.contract.functions.withdraw(stack.agent.address)),
        extra=[attacker.address],
    )
    assert stack.agent.credits(attacker.address) == PRICE


def test_reentrant_owner_collects_royalties_once(stack: Stack) -> None:
    owner = deploy_attacker(stack, "ReentrantOwner")
    factory = stack.tx.contract("AgentFactory", stack.deployment.factory)
    create = owner.contract.functions.createAgent(
        factory.address, MEASUREMENT, PRICE, ROYALTY_BPS, stack.deployment.registry, TIMEOUT
    )
    receipt = owner.send(stack, create)
    (created,) = factory.events.AgentCreated().process_receipt(receipt, errors=DISCARD)
    agent = AgentClient(stack.tx, str(created["args"]["agent"]))
    others_money(stack, agent)
    royalty = PRICE - WORKER_SHARE
    assert agent.credits(owner.address) == royalty
    owner.arm(stack, agent, "withdraw", [])
    withdraw_pays_once(stack, owner, agent, royalty)
    assert stack.balance(agent.address) == PRICE + WORKER_SHARE
