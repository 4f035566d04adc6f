"""`enclava worker run` as a real process against a real Anvil node: it registers through the
attestation service, serves the agent contract its bundle matches, refuses one it does not, and
survives SIGKILL at random points with no request lost and none fulfilled twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from agents.bundle import measure
from attestation.service import ServiceKeys, ServiceSettings, create_app, simulator_domain
from attestation.token import agent_measurement_id
from contracts.chain import Chain
from contracts.client import AgentClient, Deployment, RequestInfo, Transactor, create_agent, deploy
from enclava.devstack import serve_in_thread
from enclave.tee.sim import SimulatedTdx
from enclave.worker import JobState, WorkerState

pytestmark = pytest.mark.anvil

SUM_BUNDLE = Path(__file__).parents[2] / "examples" / "sum-agent"
ENCLAVA = Path(sys.executable).with_name("enclava")
PRICE = 10**15
FULFILLED = 2


@dataclass
class Site:
    """A deployed stack on Anvil, an attestation service trusting the state dir's simulator."""

    chain: Chain
    tx: Transactor
    deployment: Deployment
    service_url: str
    state: Path
    relayer: LocalAccount
    caller: LocalAccount

    def agent(self, measurement: bytes) -> AgentClient:
        owner = self.chain.dev_accounts()[0]
        return create_agent(
            self.tx, owner, self.deployment.factory, measurement=measurement, price=PRICE,
            royalty_bps=0, registry=self.deployment.registry, timeout=3_600,
        )  # fmt: skip

    def worker(self, agent: AgentClient, log: Path, *extra: str) -> subprocess.Popen[bytes]:
        args = [
            str(ENCLAVA), "worker", "run", "--rpc-url", self.chain.url,
            "--agent-contract", agent.address, "--bundle", str(SUM_BUNDLE),
            "--attestation-service", self.service_url, "--backend", "sim",
            "--state", str(self.state), "--poll-interval", "0.2", *extra,
        ]  # fmt: skip
        env = {**os.environ, "ENCLAVA_PRIVATE_KEY": self.relayer.key.hex()}
        with log.open("ab") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.fixture(scope="module")
def site(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    state = tmp_path_factory.mktemp("worker-state")
    sim = SimulatedTdx(state / "sim", now=datetime.now(UTC))  # the worker's machine, same dir
    settings = ServiceSettings(dev=True, cache_dir=None, refresh_interval_seconds=0)
    keys = ServiceKeys.generate()
    app = create_app(settings, signing=keys, dev_domains=[simulator_domain(sim)])
    with serve_in_thread(app) as url:
        tx = Transactor(chain)
        owner, relayer, caller = chain.dev_accounts()[:3]
        deployment = deploy(tx, owner, [keys.eip712.address])
        yield Site(chain, tx, deployment, url, state, relayer, caller)


def sum_measurement() -> bytes:
    return agent_measurement_id(measure(SUM_BUNDLE).digest)


def fulfilled_events(agent: AgentClient, ids: set[int]) -> dict[int, list[bytes]]:
    logs = agent.contract.events.Fulfilled().get_logs(from_block=0)
    seen: dict[int, list[bytes]] = {}
    for event in logs:
        if int(event["args"]["id"]) in ids:
            seen.setdefault(int(event["args"]["id"]), []).append(bytes(event["args"]["output"]))
    return seen


def events_worker(agent: AgentClient) -> str:
    (worker,) = {
        str(e["args"]["worker"]) for e in agent.contract.events.Fulfilled().get_logs(from_block=0)
    }
    return worker


def test_a_worker_refuses_an_agent_pinning_another_bundle(site: Site, tmp_path: Path) -> None:
    other = site.agent(b"\x07" * 32)
    process = site.worker(other, tmp_path / "worker.log", "--json")
    assert process.wait(120) == 2
    text = (tmp_path / "worker.log").read_text()
    assert json.loads(text.strip().splitlines()[-1])["error"]["code"] == "worker_misconfigured"


def test_survives_sigkill_at_random_points_with_200_requests_in_flight(
    site: Site, tmp_path: Path
) -> None:
    agent = site.agent(sum_measurement())
    rng = random.Random(20261125)
    log = tmp_path / "worker.log"
    requests: list[RequestInfo] = []

    def send(count: int) -> None:
        for _ in range(count):
            values = [rng.randint(-50, 50) for _ in range(rng.randint(1, 8))]
            data = json.dumps({"values": values}).encode()
            requests.append(agent.request(site.caller, data))

    send(60)  # some wait before the first boot
    for _ in range(5):
        done_before = len(fulfilled_events(agent, {r.id for r in requests}))
        batch = rng.choice(["1", "2", "3"])  # small batches: many transactions to die between
        process = site.worker(agent, log, "--batch-size", batch)
        send(28)  # ... and the rest arrive while the worker runs and dies
        give_up = time.monotonic() + 60
        while len(fulfilled_events(agent, {r.id for r in requests})) == done_before:
            assert time.monotonic() < give_up and process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)  # wait for this worker to be busy fulfilling
        time.sleep(rng.uniform(0.0, 0.25))  # then a random point: reading, running, sending
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    ids = {r.id for r in requests}
    assert len(ids) == 200
    assert len(fulfilled_events(agent, ids)) < 200, "the kills came too late to test anything"

    payee = Account.create().address
    process = site.worker(agent, log, "--payout-to", payee)  # swept when it stops
    try:
        deadline = time.monotonic() + 180
        while len(fulfilled_events(agent, ids)) < len(ids):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "not every request was fulfilled in time"
            time.sleep(0.5)  # polling the chain with a deadline
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0  # a clean stop on SIGTERM

    events = fulfilled_events(agent, ids)
    assert sorted(events) == sorted(ids)
    assert all(len(outputs) == 1 for outputs in events.values())  # exactly once each
    assert {agent.status(rid) for rid in ids} == {FULFILLED}
    for request in requests:
        expected = sum(json.loads(request.input)["values"])
        assert json.loads(events[request.id][0])["sum"] == pytest.approx(expected)
    state = WorkerState(site.state / "worker.db")
    try:
        jobs = state.jobs(agent.address)
        assert {j.state for j in jobs} == {JobState.DONE}
        assert {j.request.id for j in jobs} == ids
    finally:
        state.close()
    worker = str(events_worker(agent))
    assert agent.credits(worker) == 0  # the stop swept every fee ...
    assert site.chain.w3.eth.get_balance(payee) > 190 * PRICE  # ... to the payout address
    registry = site.tx.contract("WorkerRegistry", site.deployment.registry)
    registrations = registry.events.WorkerRegistered().get_logs(from_block=0)
    mine = [r for r in registrations if bytes(r["args"]["measurement"]) == sum_measurement()]
    assert len(mine) == 1  # registered at the first boot; restarts find it still valid
