"""The peer set of each served agent, read from the chain: the workers holding an unexpired
registration for the agent's measurement in its registry.

Workers coordinate through the registry alone (no gossip): each one replays the registry's
`WorkerRegistered` events, keeps the latest expiry per (measurement, worker), and counts a worker
as a peer while the chain's clock is before that expiry. Every worker replaying the same events
gets the same set, so `enclave.worker.assignment` picks the same assignee everywhere; a worker
that stops renewing drops out when its registration expires.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from eth_utils.address import to_checksum_address

from contracts.client import Transactor
from contracts.events import EventReader

__all__ = ["RegistryPeers"]


class RegistryPeers:
    """`Worker`'s `peers` callable over one registry. `measurements`: agent contract address →
    the measurement it pins. `refresh()` reads new events; call it once per worker step."""

    def __init__(
        self, tx: Transactor, registry: str, measurements: Mapping[str, bytes], *, start: int = 0
    ) -> None:
        self._tx = tx
        self._measurements = {to_checksum_address(a): m for a, m in measurements.items()}
        contract = tx.contract("WorkerRegistry", registry)
        self._reader = EventReader(tx.chain, contract, ["WorkerRegistered"], start=start)
        self._expiry: dict[bytes, dict[str, int]] = defaultdict(dict)
        self._now = 0

    def refresh(self) -> None:
        """Read registrations since the last refresh and the chain's current time."""
        for event in self._reader.poll():
            args = event.args
            workers = self._expiry[bytes(args["measurement"])]
            workers[str(args["worker"])] = int(args["expiresAt"])
        self._now = int(self._tx.chain.w3.eth.get_block("latest")["timestamp"])

    def __call__(self, agent: str) -> list[str]:
        """The workers registered for `agent`'s measurement now, sorted (empty if unknown)."""
        measurement = self._measurements.get(to_checksum_address(agent))
        if measurement is None:
            return []
        workers = self._expiry.get(measurement, {})
        return sorted(w for w, expires in workers.items() if expires > self._now)
