"""Two `enclava worker run` processes on two simulated machines share one agent on one Anvil chain,
coordinated by the chain alone (the harness of `bench/scale.py`): they split a burst of requests
by rendezvous assignment with each request fulfilled exactly once, and when one is SIGKILLed the
other answers its requests once the grace period has passed."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bench.scale import BUNDLES, Burst, Cluster, WorkerChild, cluster, fulfilments, wait_until
from contracts.chain import Chain
from contracts.client import AgentClient
from enclave.worker.assignment import assigned_worker

pytestmark = pytest.mark.anvil

GRACE_S = 8  # whole seconds: compared with block timestamps
SUM = BUNDLES["sum"]
FULFILLED = 2


@dataclass
class Pair:
    site: Cluster
    agent: AgentClient
    workers: list[WorkerChild]

    @property
    def addresses(self) -> list[str]:
        return [str(w.address) for w in self.workers]

    def burst(self, count: int, offset: int) -> Burst:
        inputs = [json.dumps({"values": [offset + i, 1]}).encode() for i in range(count)]
        return self.site.burst(self.agent, inputs, automine=True)

    def closed(self, burst: Burst, alive: list[WorkerChild]) -> dict[int, list[str]]:
        """Waits until every request of `burst` is fulfilled (while `alive` keep running); the
        fulfilling workers per id, in event order."""
        wanted = set(burst.ids)

        def done() -> bool:
            assert all(w.process.poll() is None for w in alive), self.logs()
            return len(fulfilments(self.agent, wanted, burst.first_block)) == len(wanted)

        wait_until(done, 60 + GRACE_S, "every request fulfilled", 0.1)
        return fulfilments(self.agent, wanted, burst.first_block)

    def logs(self) -> str:
        return "\n".join(w.log.read_text(errors="replace")[-1500:] for w in self.workers)


@pytest.fixture(scope="module")
def pair(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with cluster(chain, tmp_path_factory.mktemp("scale"), 2) as site:
        agent = site.deploy_agent(SUM)
        extra = ("--batch-size", "2", "--poll-interval", "0.2", "--grace", str(GRACE_S))
        workers = [site.start(i, agent, SUM, *extra) for i in range(2)]
        wait_until(lambda: all(w.booted() for w in workers), 180, "workers boot", 0.2)
        yield Pair(site, agent, workers)


def test_two_workers_split_a_burst_by_assignment_each_request_fulfilled_once(pair: Pair) -> None:
    burst = pair.burst(40, offset=0)
    closed = pair.closed(burst, pair.workers)

    assert sorted(closed) == sorted(burst.ids)
    assert all(len(workers) == 1 for workers in closed.values()), "a request fulfilled twice"
    shares = {a: sum(ws[0] == a for ws in closed.values()) for a in pair.addresses}
    assert min(shares.values()) >= 0.2 * len(burst.ids), shares
    for request_id, (worker,) in closed.items():  # nobody waited out the grace period
        assert worker == assigned_worker(request_id, pair.addresses, agent=pair.agent.address)
    assert {pair.agent.status(r) for r in burst.ids} == {FULFILLED}


def test_the_survivor_answers_a_killed_peers_requests_after_the_grace_period(pair: Pair) -> None:
    survivor, killed = pair.workers
    killed.stop(signal.SIGKILL)  # its registration stays valid: still a peer, still assigned
    burst = pair.burst(30, offset=1000)
    orphans = {
        r
        for r in burst.ids
        if assigned_worker(r, pair.addresses, agent=pair.agent.address) == killed.address
    }
    assert orphans, "no request was assigned to the killed worker"
    closed = pair.closed(burst, [survivor])

    assert sorted(closed) == sorted(burst.ids)
    assert {tuple(ws) for ws in closed.values()} == {(survivor.address,)}  # once each
    w3 = pair.site.chain.w3
    requested_at = int(w3.eth.get_block(burst.first_block)["timestamp"])
    events = pair.agent.contract.events.Fulfilled().get_logs(from_block=burst.first_block)
    waited = {
        int(e["args"]["id"]): int(w3.eth.get_block(e["blockNumber"])["timestamp"]) - requested_at
        for e in events
    }
    assert min(waited[r] for r in orphans) >= GRACE_S  # taken over only after the grace period
