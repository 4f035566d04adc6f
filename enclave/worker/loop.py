"""The chain worker loop: read `Requested` events of the served agents, run the agent, sign the
`Fulfillment` with the enclave key and fulfil on chain, batching when several answers are ready.

Two accounts take part: the enclave key (`keys`) signs every fulfilment, and the contract credits
the fee to that signer; `sender` only pays gas for the transaction (any funded account will do,
the contract does not care who sends).

Inputs. An input whose first byte is `ENVELOPE_VERSION` (0x01) is an envelope sealed to the
worker's X25519 key (`enclave.envelope`) with the context `onchain_envelope_context(agent, caller,
chain_id)`; its plaintext is the caller's 32-byte X25519 reply key followed by the agent's JSON
(the layout of the HTTP gateway's envelopes), and the output published on chain is the answer
sealed to that reply key under `onchain_response_context(agent, request id, chain_id)`. Any other
input is the agent's JSON as is (JSON text never starts with 0x01) and is answered in the clear.

An envelope opens for one worker only. With peers, a worker answers an envelope it can open at
once, whoever the request is assigned to, and leaves one it cannot open to its peers until the
grace period has passed; then the assignee answers it with an `envelope_invalid` error.

Outcomes. A caller at fault (input the agent refuses, an envelope that does not open) gets a
fulfilment whose output is `{"error":{"code":...}}` (canonical JSON, the stable code of
`agents.errors` / `enclave.errors`), so the request closes instead of waiting for its deadline.
When the agent itself fails the job is `failed(<code>)` and not fulfilled: the caller is refunded
after the deadline. `RequestNotOpen` means another worker fulfilled (or the caller cancelled)
first: the job is `done`. `DeadlinePassed` makes it `failed(expired)`. A lost chain connection
leaves every job where it is for the next step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Protocol

from eth_account.messages import SignableMessage
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from agents.canonical import dump_canonical
from agents.errors import AgentError
from agents.runtime import Reply
from contracts.client import AgentClient, Transactor, request_from_event
from contracts.errors import ChainUnavailableError, RevertError
from contracts.events import EventReader
from contracts.typed_data import fulfillment_message
from enclave.envelope import ENVELOPE_VERSION, EnvelopeContext, seal_response
from enclave.errors import EnclaveError, EnvelopeError
from enclave.worker.assignment import may_take
from enclave.worker.state import ClosedJob, Job, JobState, WorkerState

__all__ = [
    "REPLY_KEY_SIZE",
    "FulfilmentSigner",
    "Peers",
    "ServedRuntime",
    "StepReport",
    "Worker",
    "onchain_envelope_context",
    "onchain_response_context",
]

log = logging.getLogger(__name__)

# Reverts about this worker's registration: it may be renewed, so the job is retried until then
# (or until its deadline passes and the contract answers `DeadlinePassed`).
_REGISTRATION_ERRORS = frozenset({"WorkerNotRegistered", "RegistrationExpired", "WrongMeasurement"})
_STATUS_OPEN = 1
REPLY_KEY_SIZE = 32  # an X25519 public key

# The workers sharing an agent: a fixed list, or a function of the agent's address (e.g. the
# addresses currently registered for its measurement). None or empty: a lone worker.
Peers = Sequence[str] | Callable[[str], Sequence[str]] | None


class FulfilmentSigner(Protocol):
    """The enclave identity as the loop needs it (`enclave.keys.EnclaveKeys` is one)."""

    @property
    def address(self) -> str: ...

    def sign_message(self, message: SignableMessage) -> bytes: ...

    def open_request(self, envelope: bytes, context: EnvelopeContext) -> bytes: ...


class ServedRuntime(Protocol):
    """An agent as the loop needs it (`agents.runtime.AgentRuntime` is one): `submit` validates
    in the caller's thread (raising `agents.errors.InputError`) and queues a batched call."""

    def submit(self, request: bytes) -> Future[Reply]: ...


@dataclass
class StepReport:
    """What one `Worker.step` did: counts over all agents, and the errors it carried on past."""

    recorded: int = 0
    fulfilled: int = 0
    closed_elsewhere: int = 0
    failed: int = 0
    transactions: int = 0
    errors: list[str] = field(default_factory=list)
    closed: list[ClosedJob] = field(default_factory=list)  # each job closed, in order


def onchain_envelope_context(agent: str, caller: str, chain_id: int) -> EnvelopeContext:
    """The context an on-chain input envelope is sealed under. The request id is not known before
    the request is mined, so the envelope binds the caller's address instead: a ciphertext copied
    into another account's request does not open."""
    return EnvelopeContext(to_checksum_address(agent), to_checksum_address(caller), chain_id)


def onchain_response_context(agent: str, request_id: int, chain_id: int) -> EnvelopeContext:
    """The context an on-chain output is sealed to the caller's reply key under: the request id
    is known by then, so a sealed answer does not open as another request's."""
    return EnvelopeContext(to_checksum_address(agent), str(request_id), chain_id)


@dataclass(frozen=True)
class _Input:
    """A job's input as the agent gets it, and the key its answer is sealed to (if any)."""

    data: bytes
    reply_key: bytes | None = None


class Worker:
    """Serve `agents` (agent contract address → runtime) on the chain behind `tx`.

    `confirmations`: blocks an event must be buried under before it is read. `batch_size`: most
    fulfilments per `fulfillBatch` transaction. `clock`: Unix seconds, for deadlines and the
    assignment grace period. `peers`: the workers sharing these agents (see `Peers` and
    `enclave.worker.assignment`). `start_block`: where an agent never read before starts (its
    deployment block, ideally)."""

    def __init__(
        self,
        tx: Transactor,
        keys: FulfilmentSigner,
        agents: Mapping[str, ServedRuntime],
        state: WorkerState,
        *,
        sender: LocalAccount,
        confirmations: int = 0,
        batch_size: int = 16,
        clock: Callable[[], float] = time.time,
        peers: Peers = None,
        grace_s: float = 60.0,
        start_block: int = 0,
        agent_timeout_s: float = 60.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.tx = tx
        self.keys = keys
        self.state = state
        self.sender = sender
        self.batch_size = batch_size
        self.clock = clock
        self.peers = peers
        self.grace_s = grace_s
        self.agent_timeout_s = agent_timeout_s
        self.chain_id = tx.chain.chain_id
        self._runtimes: dict[str, ServedRuntime] = {
            str(to_checksum_address(a)): r for a, r in agents.items()
        }
        self._opened: dict[tuple[str, int], _Input] = {}  # envelopes opened to decide ownership
        self._clients = {a: AgentClient(tx, a) for a in self._runtimes}
        self._readers = {
            a: EventReader(
                tx.chain,
                client.contract,
                ["Requested"],
                start=_or(state.cursor(a), start_block),
                confirmations=confirmations,
            )
            for a, client in self._clients.items()
        }

    def step(self) -> StepReport:
        """One iteration over every served agent; never raises an `Exception`."""
        report = StepReport()
        for agent in self._runtimes:
            try:
                report.recorded += self._poll(agent)
                self._work(agent, report)
            except Exception as exc:  # one agent's trouble must not stop the others
                log.exception("worker step failed for agent %s", agent)
                report.errors.append(f"{agent}: {type(exc).__name__}: {exc}")
        return report

    def run(self, stop: threading.Event, *, interval_s: float = 1.0) -> None:
        """Step every `interval_s` seconds until `stop` is set."""
        while not stop.is_set():
            self.step()
            stop.wait(interval_s)

    def _poll(self, agent: str) -> int:
        reader = self._readers[agent]
        before = reader.cursor
        events = reader.poll()
        requests = [request_from_event(e.args, e.block_number) for e in events]
        try:
            return self.state.record(agent, requests, reader.cursor, now=self.clock())
        except BaseException:
            reader.cursor = before  # not recorded: read these blocks again
            raise

    def _work(self, agent: str, report: StepReport) -> None:
        now = self.clock()
        peers = self._peers(agent)
        jobs = [j for j in self.state.open_jobs(agent) if self._mine(j, peers, now)]
        fresh = [j for j in jobs if j.state is not JobState.SUBMITTED]
        signed = [j for j in jobs if j.state is JobState.SUBMITTED]
        signed += self._answer(agent, fresh, now, report)
        for start in range(0, len(signed), self.batch_size):
            if not self._fulfil(agent, signed[start : start + self.batch_size], report):
                return

    def _peers(self, agent: str) -> Sequence[str] | None:
        peers = self.peers(agent) if callable(self.peers) else self.peers
        return tuple(peers) if peers else None

    def _mine(self, job: Job, peers: Sequence[str] | None, now: float) -> bool:
        waited = now - job.seen_at
        if peers and waited < self.grace_s and _is_envelope(job.request.input):
            return self._opens(job)  # sealed to one worker: whoever holds the key answers
        return may_take(
            self.keys.address,
            job.request.id,
            peers,
            agent=job.agent,
            waited_s=waited,
            grace_s=self.grace_s,
        )

    def _opens(self, job: Job) -> bool:
        key = (job.agent, job.request.id)
        if key not in self._opened:
            try:
                self._opened[key] = self._open(job.agent, job)
            except EnvelopeError:
                return False
        return True

    def _answer(self, agent: str, jobs: list[Job], now: float, report: StepReport) -> list[Job]:
        """Run the agent on `jobs` (one batch where it can) and sign each answer."""
        pending: list[tuple[Job, Future[Reply] | bytes, bytes | None]] = []
        for job in jobs:
            if now > job.request.deadline:
                self._fail(job, "expired", report)
                continue
            self.state.transition(agent, job.request.id, JobState.RUNNING)
            pending.append((job, *self._submit(agent, job)))
        signed = []
        for job, answer, reply_key in pending:
            body = answer if isinstance(answer, bytes) else self._result(job, answer, report)
            if body is None:
                continue
            if reply_key is not None:
                context = onchain_response_context(agent, job.request.id, self.chain_id)
                body = seal_response(reply_key, body, context)
            signed.append(self._sign(job, body))
        return signed

    def _submit(self, agent: str, job: Job) -> tuple[Future[Reply] | bytes, bytes | None]:
        """The agent's pending reply (or at once the error body for input the caller got wrong),
        and the key to seal the answer to."""
        reply_key = None
        try:
            plain = self._opened.pop((agent, job.request.id), None) or self._open(agent, job)
            reply_key = plain.reply_key
            return self._runtimes[agent].submit(plain.data), reply_key
        except (AgentError, EnclaveError) as exc:
            if not isinstance(exc, ValueError):  # InputError, EnvelopeError: the caller's fault
                raise
            return dump_canonical({"error": {"code": exc.code}}), reply_key

    def _open(self, agent: str, job: Job) -> _Input:
        data = job.request.input
        if not _is_envelope(data):
            return _Input(data)
        context = onchain_envelope_context(agent, job.request.caller, self.chain_id)
        plain = self.keys.open_request(data, context)
        if len(plain) < REPLY_KEY_SIZE:
            raise EnvelopeError(f"the plaintext must start with a {REPLY_KEY_SIZE}-byte reply key")
        return _Input(plain[REPLY_KEY_SIZE:], plain[:REPLY_KEY_SIZE])

    def _result(self, job: Job, future: Future[Reply], report: StepReport) -> bytes | None:
        try:
            return future.result(self.agent_timeout_s).body
        except AgentError as exc:
            self._fail(job, exc.code, report)
        except TimeoutError:
            self._fail(job, "agent_timeout", report)
        return None

    def _sign(self, job: Job, body: bytes) -> Job:
        request = job.request
        message = fulfillment_message(
            chain_id=self.chain_id,
            agent=job.agent,
            request_id=request.id,
            input_hash=request.input_hash,
            output_hash=keccak(body),
        )
        signature = self.keys.sign_message(message)
        self.state.transition(
            job.agent, request.id, JobState.SUBMITTED, output=body, signature=signature
        )
        return replace(job, state=JobState.SUBMITTED, output=body, signature=signature)

    def _fulfil(self, agent: str, jobs: list[Job], report: StepReport) -> bool:
        """Send `jobs` in one transaction, or one by one when the batch reverts. False when the
        chain is unreachable (the rest waits for the next step)."""
        if len(jobs) > 1:
            items = [(j.request, _bytes(j.output), _bytes(j.signature)) for j in jobs]
            try:
                receipt = self._clients[agent].fulfill_batch(self.sender, items)
            except RevertError as exc:
                log.info("batch of %d reverted (%s); sending one by one", len(jobs), exc)
            except ChainUnavailableError as exc:
                report.errors.append(f"{agent}: {exc}")
                return False
            else:
                report.transactions += 1
                for job in jobs:
                    self._done(job, receipt["transactionHash"].hex(), report)
                return True
        for job in jobs:
            try:
                self._fulfil_one(agent, job, report)
            except ChainUnavailableError as exc:
                report.errors.append(f"{agent}: {exc}")
                return False
        return True

    def _fulfil_one(self, agent: str, job: Job, report: StepReport) -> None:
        client = self._clients[agent]
        try:
            receipt = client.fulfill(
                self.sender, job.request, _bytes(job.output), _bytes(job.signature)
            )
        except RevertError as exc:
            self._reverted(job, exc, report)
            return
        report.transactions += 1
        self._done(job, receipt["transactionHash"].hex(), report)

    def _reverted(self, job: Job, exc: RevertError, report: StepReport) -> None:
        name = exc.error_name
        if name == "RequestNotOpen":
            self._closed_elsewhere(job, report)
        elif name == "DeadlinePassed":
            self._fail(job, "expired", report)
        elif name in _REGISTRATION_ERRORS:
            report.errors.append(f"{job.agent}: request {job.request.id}: {exc}")
        elif self._clients[job.agent].status(job.request.id) != _STATUS_OPEN:
            self._closed_elsewhere(job, report)  # e.g. our earlier transaction landed meanwhile
        else:
            self._fail(job, name or "reverted", report)

    def _done(self, job: Job, tx_hash: str, report: StepReport) -> None:
        self.state.transition(job.agent, job.request.id, JobState.DONE, tx_hash=tx_hash)
        report.fulfilled += 1
        report.closed.append(ClosedJob(job.agent, job.request.id, JobState.DONE, tx_hash, None))

    def _closed_elsewhere(self, job: Job, report: StepReport) -> None:
        detail = "closed_elsewhere"
        self.state.transition(job.agent, job.request.id, JobState.DONE, detail=detail)
        report.closed_elsewhere += 1
        report.closed.append(ClosedJob(job.agent, job.request.id, JobState.DONE, None, detail))

    def _fail(self, job: Job, code: str, report: StepReport) -> None:
        self._opened.pop((job.agent, job.request.id), None)
        self.state.transition(job.agent, job.request.id, JobState.FAILED, detail=code)
        report.failed += 1
        report.closed.append(ClosedJob(job.agent, job.request.id, JobState.FAILED, None, code))


def _is_envelope(data: bytes) -> bool:
    return data[:1] == bytes([ENVELOPE_VERSION])


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _bytes(value: bytes | None) -> bytes:
    if value is None:
        raise ValueError("a submitted job lacks its output or signature")
    return value
