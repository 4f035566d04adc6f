"""A worker as a long-running process: bind agent contracts to loaded bundles, stay registered,
keep the peer set fresh and step the loop until told to stop (`enclava worker run`).

Binding. Each agent contract pins a measurement (`agent_measurement_id` of a bundle digest);
the worker serves a contract only with the bundle whose digest gives that measurement, so a
worker started with the wrong bundle refuses to start instead of fulfilling what the contract
would reject. All served contracts must share one registry (run one worker per registry).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from agents.runtime import AgentRuntime
from attestation.token import agent_measurement_id
from contracts.client import AgentClient, Transactor
from contracts.errors import ContractError
from enclave.errors import RegistrationError, WorkerConfigError
from enclave.worker.loop import Worker
from enclave.worker.peers import RegistryPeers
from enclave.worker.registration import Registrar

__all__ = ["BoundAgent", "WorkerProcess", "bind_agents"]

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
    ) -> None:
        self.worker = worker
        self.registrar = registrar
        self.peers = peers
        self.measurements = {a.name: a.measurement for a in agents}
        self.interval_s = interval_s
        self.renew_every_s = renew_every_s
        self._monotonic = monotonic
        self._renewed_at: float | None = None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick()
            stop.wait(self.interval_s)

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
        try:
            self.peers.refresh()
        except ContractError as exc:
            log.warning("peer refresh failed: %s", exc)
        report = self.worker.step()
        for error in report.errors:
            log.warning("worker: %s", error)
        if report.fulfilled or report.failed:
            log.info(
                "fulfilled %d, closed elsewhere %d, failed %d in %d transactions",
                report.fulfilled, report.closed_elsewhere, report.failed, report.transactions,
            )  # fmt: skip
