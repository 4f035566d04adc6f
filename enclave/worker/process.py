"""A worker as a long-running process: bind agent contracts to loaded bundles, stay registered,
keep the peer set fresh and step the loop until told to stop (`enclava worker run`).

Binding. Each agent contract pins a measurement (`agent_measurement_id` of a bundle digest);
the worker serves a contract only with the bundle whose digest gives that measurement, so a
worker started with the wrong bundle refuses to start instead of fulfilling what the contract
would reject. All served contracts must share one registry (run one worker per registry).

Telemetry. With a `Telemetry`, each step's closed jobs are logged one by one (agent, contract,
on-chain request id as `chain_request_id`, tx hash or failure code, as `extra=` fields) and the
metrics move; without one, a step logs its counts only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eth_utils.address import to_checksum_address

from agents.runtime import AgentRuntime
from attestation.token import agent_measurement_id
from contracts.client import AgentClient, Transactor
from contracts.errors import ContractError
from enclave.errors import RegistrationError, WorkerConfigError
from enclave.worker.loop import StepReport, Worker
from enclave.worker.metrics import WorkerMetrics
from enclave.worker.payout import Payout
from enclave.worker.peers import RegistryPeers
from enclave.worker.registration import Registrar
from enclave.worker.state import ClosedJob, WorkerState

__all__ = ["BoundAgent", "Telemetry", "WorkerProcess", "bind_agents"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoundAgent:
    """An agent contract and the loaded bundle that matches its pinned measurement."""

    name: str
    address: str
    measurement: bytes
    runtime: AgentRuntime


def bind_agents(
    tx: Transactor, contracts: Sequence[str], runtimes: Mapping[str, AgentRuntime]
) -> tuple[str, list[BoundAgent]]:
    """The shared registry and one `BoundAgent` per contract, or `WorkerConfigError`."""
    by_measurement = {agent_measurement_id(r.measurement.digest): r for r in runtimes.values()}
    bound, registries = [], set()
    for address in contracts:
        try:
            client = AgentClient(tx, address)
            measurement, registry = client.measurement(), client.registry()
        except (ContractError, ValueError) as exc:
            raise WorkerConfigError(f"{address} is not a readable agent contract: {exc}") from None
        runtime = by_measurement.get(measurement)
        if runtime is None:
            raise WorkerConfigError(
                f"agent {address} pins measurement 0x{measurement.hex()}; "
                "no loaded bundle has it (check the bundle version)"
            )
        bound.append(BoundAgent(runtime.manifest.name, client.address, measurement, runtime))
        registries.add(registry)
    if len(registries) != 1:
        raise WorkerConfigError("the agents use different registries: run one worker per registry")
    return registries.pop(), bound


@dataclass(frozen=True)
class Telemetry:
    """What a `WorkerProcess` reports through: `state` is the worker's state (the open jobs and
    the cursors are read from it), `head` the chain's latest block number (for the cursor lag)."""

    state: WorkerState
    metrics: WorkerMetrics
    head: Callable[[], int]


class WorkerProcess:
    """Steps `worker` every `interval_s`, refreshing `peers` before each step and renewing the
    registrations through `registrar` every `renew_every_s` (failures are logged and retried:
    the registry keeps accepting fulfilments until the old registration expires)."""

    def __init__(
        self,
        worker: Worker,
        registrar: Registrar,
        peers: RegistryPeers,
        agents: Sequence[BoundAgent],
        *,
        interval_s: float = 1.0,
        renew_every_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
        telemetry: Telemetry | None = None,
        payout: Payout | None = None,
        payout_every_s: float = 3_600.0,
    ) -> None:
        self.worker = worker
        self.registrar = registrar
        self.peers = peers
        self.measurements = {a.name: a.measurement for a in agents}
        self.names = {str(to_checksum_address(a.address)): a.name for a in agents}
        self.telemetry = telemetry
        self.interval_s = interval_s
        self.renew_every_s = renew_every_s
        self._monotonic = monotonic
        self._renewed_at: float | None = None
        self.payout = payout
        self.payout_every_s = payout_every_s
        self._swept_at = monotonic()

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop`; then sweep the earnings one last time (with a payout)."""
        while not stop.is_set():
            self.tick()
            stop.wait(self.interval_s)
        self.sweep()

    def sweep(self) -> None:
        """Move the earnings to the payout address now, if there is one; errors are logged (the
        credits stay in the contracts for the next sweep)."""
        if self.payout is None:
            return
        self._swept_at = self._monotonic()
        try:
            swept = self.payout.sweep()
        except ContractError as exc:
            log.warning("payout sweep failed (will retry): %s", exc)
            return
        if swept.withdrawn:
            log.info("withdrew %d wei of earnings", sum(swept.withdrawn.values()))

    def tick(self) -> None:
        """One round: renew if due, refresh peers, step the loop. Never raises an `Exception`."""
        now = self._monotonic()
        if self._renewed_at is None or now - self._renewed_at >= self.renew_every_s:
            try:
                renewed = self.registrar.renew(self.measurements)
                self._renewed_at = now
                if renewed:
                    log.info("registered again for %s", ", ".join(renewed))
            except (RegistrationError, ContractError) as exc:
                log.warning("registration renewal failed (will retry): %s", exc)
        if now - self._swept_at >= self.payout_every_s:
            self.sweep()
        try:
            self.peers.refresh()
        except ContractError as exc:
            log.warning("peer refresh failed: %s", exc)
        started = self._monotonic()
        report = self.worker.step()
        seconds = self._monotonic() - started
        for error in report.errors:
            log.warning("worker: %s", error)
        if self.telemetry is None:
            _log_counts(report)
        else:
            self._observe(self.telemetry, report, seconds)

    def _observe(self, telemetry: Telemetry, report: StepReport, seconds: float) -> None:
        closed = report.closed
        for job in closed:
            self._log_closed(job)
        codes = [job.detail or "unknown" for job in closed if job.outcome == "failed"]
        telemetry.metrics.observe_step(report, seconds, codes)
        try:
            self._observe_backlog(telemetry)
        except Exception as exc:  # e.g. the chain is down: the step has said so already
            log.debug("backlog metrics not updated: %s", exc)

    def _observe_backlog(self, telemetry: Telemetry) -> None:
        head = telemetry.head()
        for contract, name in self.names.items():
            cursor = telemetry.state.cursor(contract)  # the next block to read
            if cursor is not None:
                open_jobs = len(telemetry.state.open_jobs(contract))
                lag = head - (cursor - 1)
                telemetry.metrics.observe_backlog(name, contract, open_jobs=open_jobs, lag=lag)

    def _log_closed(self, job: ClosedJob) -> None:
        name = self.names.get(job.agent, job.agent)
        fields = {"agent": name, "contract": job.agent, "chain_request_id": job.request_id}
        if job.outcome == "fulfilled":
            tx_hash = "0x" + str(job.tx_hash).removeprefix("0x")
            log.info(
                "fulfilled request %d of %s in %s", job.request_id, name, tx_hash,
                extra={**fields, "outcome": job.outcome, "tx_hash": tx_hash},
            )  # fmt: skip
        elif job.outcome == "closed_elsewhere":
            log.info(
                "request %d of %s was closed elsewhere", job.request_id, name,
                extra={**fields, "outcome": job.outcome},
            )  # fmt: skip
        else:
            log.warning(
                "request %d of %s failed: %s", job.request_id, name, job.detail,
                extra={**fields, "outcome": job.outcome, "code": job.detail},
            )  # fmt: skip


def _log_counts(report: StepReport) -> None:
    if report.fulfilled or report.failed or report.closed_elsewhere:
        log.info(
            "fulfilled %d, closed elsewhere %d, failed %d in %d transactions",
            report.fulfilled, report.closed_elsewhere, report.failed, report.transactions,
        )  # fmt: skip
