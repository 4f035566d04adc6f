"""A whole Enclava deployment in one process, for development and the demo (`enclava dev`).

`DevStack` starts, in order: a chain (the embedded one, or a development node with funded
accounts), a simulated TDX machine in the state directory, the attestation service (dev
configuration, ephemeral keys) on a local port, the shared contracts (a verifier trusting the
service's signer, the registry, the factory), the agents (measured into the simulator's RTMR3),
the worker's keys, its registration *through the attestation service* (quote → `/v1/verify` →
signed verdict → `WorkerRegistry.register`, once per agent), one agent contract per agent, the
worker loop in a thread, and the worker's HTTP gateway on a local port. Leaving the context
stops all of it.

`DevStack.demo()` then calls every agent it has a sample input for on chain (a request from a
dev account, answered by the worker) and over HTTP (attested, pinned to the agent contract's
measurement, encrypted), and reports each step.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI

from agents.runtime import AgentRuntime
from attestation import Policy
from attestation.service import ServiceKeys, ServiceSettings, simulator_domain
from attestation.service import create_app as create_service_app
from attestation.token import agent_measurement_id
from contracts.chain import EMBEDDED, Chain, connect
from contracts.client import AgentClient, Deployment, Transactor, create_agent, deploy
from enclava import config
from enclava.gateway_commands import DEFAULT_AGENTS, build_app, load_agents
from enclava.gateway_trust import pinned_agent
from enclava.output import BadInputError
from enclave.errors import EnclaveError
from enclave.gateway_client import GatewayClient
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx
from enclave.tee.sim_gpu import SimulatedGpu
from enclave.worker import Worker, WorkerState
from enclave.worker.registration import AttestationServiceClient, Registrar

__all__ = [
    "DEMO_INPUTS",
    "DemoStep",
    "DevStack",
    "DevStackError",
    "StackAgent",
]

PRICE = 10**15  # wei per call
ROYALTY_BPS = 1_000  # 10% to the agent's owner
TIMEOUT_S = 3_600

DEMO_INPUTS: dict[str, dict[str, Any]] = {
    "embed": {"input": ["Enclava runs agents in TEEs.", "Every answer is signed."]},
    "private-search": {
        "documents": [
            "TDX quotes are signed by the quoting enclave.",
            "The agent contract pins the bundle measurement.",
            "Workers are paid per fulfilled request.",
        ],
        "queries": ["who signs a quote?"],
        "top_k": 1,
    },
    "sum": {"values": [1, 2, 3.5], "note": "dev"},
}


class DevStackError(Exception):
    """The stack cannot start (no funded accounts, the service refuses the worker, ...)."""

    code = "devstack_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class StackAgent:
    """One served agent: its bundle digest (RTMR3), on-chain measurement and contract."""

    name: str
    version: str
    digest: bytes
    measurement: bytes
    contract: AgentClient
    runtime: AgentRuntime

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest.hex(),
            "measurement": "0x" + self.measurement.hex(),
            "contract": self.contract.address,
        }


@dataclass(frozen=True)
class DemoStep:
    step: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"step": self.step, "ok": self.ok, "detail": self.detail}


@dataclass
class _Threads:
    stop: threading.Event = field(default_factory=threading.Event)
    worker: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)


class DevStack:
    """The whole stack; use as a context manager. `agents`: built-in names or bundle dirs."""

    def __init__(
        self,
        state: Path,
        *,
        rpc_url: str = EMBEDDED,
        agents: Sequence[str] = DEFAULT_AGENTS,
        poll_interval_s: float = 0.2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        gpu: bool = False,
        on_step: Callable[[str], None] = lambda step: None,
    ) -> None:
        self.state = state
        self.rpc_url = rpc_url
        self.agent_specs = tuple(agents)
        self.poll_interval_s = poll_interval_s
        self.clock = clock  # the attestation service's
        self.gpu = gpu  # a simulated H100 beside the simulated TDX
        self.on_step = on_step  # told each start-up step, for a progress display
        self.chain_lock = threading.Lock()  # the embedded chain is not thread-safe
        self.agents: dict[str, StackAgent] = {}
        self._exit = ExitStack()
        self._threads = _Threads()

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> DevStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._threads.stop.set()
        if self._threads.worker is not None:
            self._threads.worker.join(30)
        self._exit.close()

    def _start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.on_step(f"connecting to the chain ({self.rpc_url})")
        self.chain: Chain = connect(self.rpc_url)
        accounts = self.chain.dev_accounts()
        if len(accounts) < 4:
            raise DevStackError(f"the chain at {self.rpc_url} has no funded development accounts")
        self.owner, self.relayer, self.caller, self.spare = accounts[:4]
        self.tx = Transactor(self.chain)

        self.on_step("starting the simulated TEE and the attestation service")
        self.sim = SimulatedTdx(config.sim_state_dir(self.state), now=datetime.now(UTC))
        self.sim_gpu = (
            SimulatedGpu(config.sim_state_dir(self.state), now=datetime.now(UTC))
            if self.gpu
            else None
        )
        settings = ServiceSettings(dev=True, cache_dir=None, refresh_interval_seconds=0)
        service_app = create_service_app(
            settings,
            signing=ServiceKeys.generate(),
            dev_domains=[simulator_domain(self.sim, gpu=self.sim_gpu)],
            clock=lambda: self.clock(),
        )
        self.service_url = self._exit.enter_context(serve_in_thread(service_app))
        self.service_signer = str(_get_json(f"{self.service_url}/v1/signers")["address"])
        self.on_step("deploying the verifier, registry and factory")
        self.deployment: Deployment = deploy(self.tx, self.owner, [self.service_signer])

        self.on_step("loading and compiling the agents")
        runtimes = self._load_runtimes()
        self.keys = EnclaveKeys.load_or_create(self.sim, config.sealed_keys_path(self.state))
        gateway_app = build_app(
            self.sim, self.keys, dict(runtimes), self.chain.chain_id, gpus=self.sim_gpu
        )
        service = AttestationServiceClient(self.service_url)
        self._exit.callback(service.close)
        self.registrar = Registrar(
            self.sim, self.keys, self.tx, self.relayer, self.deployment.registry, service,
            policy="dev", gpus=self.sim_gpu,
        )  # fmt: skip
        for name, runtime in runtimes.items():
            self.on_step(f"registering the worker and deploying {name}'s contract")
            self.agents[name] = self._deploy_agent(name, runtime)

        db = self.state / "worker.db"
        for stale in (db, db.with_name("worker.db-wal"), db.with_name("worker.db-shm")):
            stale.unlink(missing_ok=True)  # a fresh chain reuses addresses: no old cursors
        worker_state = WorkerState(db)
        self._exit.callback(worker_state.close)
        start = int(self.chain.w3.eth.block_number)
        served = {a.contract.address: a.runtime for a in self.agents.values()}
        worker = Worker(
            self.tx, self.keys, served, worker_state, sender=self.relayer, start_block=start
        )
        thread = threading.Thread(target=self._work, args=(worker,), name="worker", daemon=True)
        self._threads.worker = thread
        thread.start()

        self.gateway_url = self._exit.enter_context(serve_in_thread(gateway_app))

    def _load_runtimes(self) -> dict[str, AgentRuntime]:
        try:
            return load_agents(self._exit, list(self.agent_specs))
        except BadInputError as exc:  # the stack's own error type, same message
            raise DevStackError(exc.message) from None

    def _deploy_agent(self, name: str, runtime: AgentRuntime) -> StackAgent:
        digest = runtime.measurement.digest
        measurement = agent_measurement_id(digest)
        self.registrar.register(name, measurement)
        contract = create_agent(
            self.tx, self.owner, self.deployment.factory, measurement=measurement, price=PRICE,
            royalty_bps=ROYALTY_BPS, registry=self.deployment.registry, timeout=TIMEOUT_S,
        )  # fmt: skip
        return StackAgent(name, runtime.manifest.version, digest, measurement, contract, runtime)

    def _work(self, worker: Worker) -> None:
        stop = self._threads.stop
        while not stop.is_set():
            with self.chain_lock:
                report = worker.step()
            self._threads.errors.extend(report.errors)
            stop.wait(self.poll_interval_s)

    @property
    def worker_errors(self) -> list[str]:
        """What the worker loop carried on past so far (chain hiccups, reverts), oldest first."""
        return list(self._threads.errors)

    # ---------------------------------------------------------------- reporting

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": {"url": self.chain.url, "chain_id": self.chain.chain_id},
            "contracts": self.deployment.to_dict(),
            "service_url": self.service_url,
            "service_signer": self.service_signer,
            "gateway_url": self.gateway_url,
            "worker": self.keys.address,
            "agents": [a.to_dict() for a in self.agents.values()],
        }

    # ---------------------------------------------------------------- the demo

    def demo(self, *, deadline_s: float = 60.0) -> list[DemoStep]:
        """Call every agent with a sample input on chain and over HTTP; one step per check."""
        steps: list[DemoStep] = []
        for agent in self.agents.values():
            value = DEMO_INPUTS.get(agent.name)
            if value is None:
                steps.append(DemoStep(f"{agent.name}", False, "no demo input for this agent"))
                continue
            expected = agent.runtime.invoke(value).body
            steps.append(self._on_chain(agent, value, expected, deadline_s))
            steps.append(self._over_http(agent, value, expected))
        return steps

    def _on_chain(
        self, agent: StackAgent, value: dict[str, Any], expected: bytes, deadline_s: float
    ) -> DemoStep:
        step = f"{agent.name} on chain"
        try:
            with self.chain_lock:
                request = agent.contract.request(self.caller, json.dumps(value).encode())
            give_up = time.monotonic() + deadline_s
            while True:
                with self.chain_lock:
                    logs = agent.contract.contract.events.Fulfilled().get_logs(
                        from_block=request.block_number
                    )
                events = [e for e in logs if int(e["args"]["id"]) == request.id]
                if events:
                    break
                if time.monotonic() > give_up:
                    return DemoStep(step, False, f"request {request.id} not fulfilled in time")
                time.sleep(self.poll_interval_s)
        except Exception as exc:  # the report names what failed; the command's exit is 1
            return DemoStep(step, False, f"{type(exc).__name__}: {exc}")
        args = events[0]["args"]
        if str(args["worker"]) != self.keys.address:
            return DemoStep(step, False, f"fulfilled by another worker {args['worker']}")
        if bytes(args["output"]) != expected:
            return DemoStep(step, False, "the on-chain output is not the agent's answer")
        tx_hash = bytes(events[0]["transactionHash"]).hex()
        return DemoStep(step, True, f"request {request.id} fulfilled in tx 0x{tx_hash[:16]}…")

    def _over_http(self, agent: StackAgent, value: dict[str, Any], expected: bytes) -> DemoStep:
        step = f"{agent.name} over HTTP"
        now = datetime.now(UTC)
        try:
            with self.chain_lock:
                pinned = agent.contract.measurement()
            with GatewayClient(self.gateway_url) as client:
                nonce = secrets.token_bytes(32)
                verified = client.verify_attestation(
                    client.attest(nonce),
                    nonce,
                    collateral=self.sim.collateral(now=now),
                    now=now,
                    trust_anchor=self.sim.trust_anchor,
                    policy=Policy(
                        allow_simulated=True, allow_simulated_gpu=True, require_gpus=int(self.gpu)
                    ),
                    expected_measurement=None,
                    gpu_trust_anchors=[self.sim_gpu.trust_anchor] if self.sim_gpu else None,
                )
                pinned_agent(verified, agent.name, pinned)
                result = client.invoke(verified, agent.name, value)
        except (EnclaveError, httpx.HTTPError, OSError) as exc:
            return DemoStep(step, False, f"{type(exc).__name__}: {exc}")
        if result.body != expected:
            return DemoStep(step, False, "the verified answer is not the agent's answer")
        sealed = "encrypted, " if result.encrypted else ""
        if verified.gpus:
            sealed = f"{len(verified.gpus)} GPU attested, " + sealed
        return DemoStep(
            step, True, f"attested, pinned to 0x{pinned.hex()[:16]}…, {sealed}signature verified"
        )


@contextmanager
def serve_in_thread(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    deadline_s: float = 10.0,
    lifespan: Literal["auto", "on", "off"] = "auto",
) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on `host`:`port` (0: a free port); yields its base
    URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        give_up = time.monotonic() + deadline_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > give_up:
                raise DevStackError("a local HTTP server did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(deadline_s)
        sock.close()


def _get_json(url: str) -> dict[str, Any]:
    return _checked(httpx.get(url, timeout=30))


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise DevStackError(f"{response.request.url} answered {response.status_code}: "
                            f"{response.text[:300]}")  # fmt: skip
    doc = response.json()
    if not isinstance(doc, dict):
        raise DevStackError(f"{response.request.url} did not answer a JSON object")
    return doc
