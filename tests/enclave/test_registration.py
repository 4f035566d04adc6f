"""Registration through the attestation service, its renewal before expiry, the peer set read
from the registry, and the worker process's tolerance of a failing renewal."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.errors import ChainUnavailableError
from enclava.devstack import DevStack
from enclave.errors import RegistrationError
from enclave.worker import StepReport
from enclave.worker.payout import Swept
from enclave.worker.peers import RegistryPeers
from enclave.worker.process import WorkerProcess
from enclave.worker.registration import AttestationServiceClient

SUM_BUNDLE = Path(__file__).parents[2] / "examples" / "sum-agent"


STEPS: list[str] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    dev = DevStack(tmp_path_factory.mktemp("dev"), agents=[str(SUM_BUNDLE)], on_step=STEPS.append)
    with dev:
        yield dev


def test_the_stack_reports_each_start_up_step(stack: DevStack) -> None:
    assert STEPS[0].startswith("connecting to the chain")
    assert any("loading and compiling the agents" in s for s in STEPS)
    assert STEPS[-1] == "registering the worker and deploying sum's contract"


@pytest.fixture(scope="module")
def gpu_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(tmp_path_factory.mktemp("gpu"), agents=[str(SUM_BUNDLE)], gpu=True) as dev:
        yield dev


def chain_now(stack: DevStack) -> int:
    return int(stack.chain.w3.eth.get_block("latest")["timestamp"])


def test_renew_registers_again_only_within_the_margin(stack: DevStack) -> None:
    agent = stack.agents["sum"]
    registrar = stack.registrar
    with stack.chain_lock:
        expires = registrar.expires_at(agent.measurement)
        left = expires - chain_now(stack)
        assert left > 0

        registrar.renew_margin_s = 0
        assert registrar.renew({"sum": agent.measurement}) == []

        registrar.renew_margin_s = left + 60  # within the margin now
        later = datetime.now(UTC) + timedelta(minutes=10)
        stack.clock = lambda: later  # the service signs a verdict that lasts longer
        assert registrar.renew({"sum": agent.measurement}) == ["sum"]
        assert registrar.expires_at(agent.measurement) > expires
        registry = stack.tx.contract("WorkerRegistry", stack.deployment.registry)
        events = registry.events.WorkerRegistered().get_logs(from_block=0)
    assert [bytes(e["args"]["measurement"]) for e in events].count(agent.measurement) == 2


def test_renew_registers_a_measurement_never_registered(stack: DevStack) -> None:
    with stack.chain_lock:
        stack.registrar.renew_margin_s = 0
        with pytest.raises(RegistrationError, match="another worker or measurement"):
            stack.registrar.renew({"sum": b"\x01" * 32})  # the verdict carries the real one


def test_peers_are_the_workers_registered_now(stack: DevStack) -> None:
    agent = stack.agents["sum"]
    with stack.chain_lock:
        peers = RegistryPeers(
            stack.tx, stack.deployment.registry, {agent.contract.address: agent.measurement}
        )
        peers.refresh()
        assert peers(agent.contract.address) == [stack.keys.address]
        assert peers("0x" + "11" * 20) == []
        left = stack.registrar.expires_at(agent.measurement) - chain_now(stack)
        stack.chain.advance_time(left + 1)
        peers.refresh()
        assert peers(agent.contract.address) == []


def service(handler: Any) -> AttestationServiceClient:
    return AttestationServiceClient("http://service", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(500, text="boom"), "answered 500"),
        (httpx.Response(200, json={"accepted": False, "reasons": ["tcb"]}), "tcb"),
        (httpx.Response(200, text="not json"), "out of protocol"),
        (httpx.Response(200, json={"accepted": True, "signed_verdict": {}}), "out of protocol"),
        (httpx.Response(200, json=[1, 2]), "out of protocol"),
    ],
)
def test_a_service_refusal_is_a_registration_error(response: httpx.Response, match: str) -> None:
    with pytest.raises(RegistrationError, match=match):
        service(lambda request: response).signed_verdict({})


def test_an_unreachable_service_is_a_registration_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RegistrationError, match="unreachable"):
        service(refuse).signed_verdict({})


class FailingRegistrar:
    def __init__(self) -> None:
        self.calls = 0

    def renew(self, agents: dict[str, bytes]) -> list[str]:
        self.calls += 1
        raise RegistrationError("the service is down")


class CountingWorker:
    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> StepReport:
        self.steps += 1
        return StepReport()


class DownPeers:
    def refresh(self) -> None:
        raise ChainUnavailableError("node down")


def test_the_process_keeps_stepping_when_renewal_and_peers_fail() -> None:
    clock = [0.0]
    registrar, worker = FailingRegistrar(), CountingWorker()
    process = WorkerProcess(
        worker, registrar, DownPeers(), [], renew_every_s=10,  # type: ignore[arg-type]
        monotonic=lambda: clock[0],
    )  # fmt: skip
    process.tick()
    process.tick()  # a failed renewal is retried at the next tick
    assert (registrar.calls, worker.steps) == (2, 2)
    stop = threading.Event()
    stop.set()
    process.run(stop)
    assert worker.steps == 2


def test_a_registration_carries_the_gpu_evidence_the_policy_judges(gpu_stack: DevStack) -> None:
    """The dev policy admits the simulated H100 (the stack registered with it); `gpu-h100-cc`
    refuses it as simulated, so the service did look at the GPU reports."""
    agent = gpu_stack.agents["sum"]
    registrar = dataclasses.replace(gpu_stack.registrar, policy="gpu-h100-cc")
    with gpu_stack.chain_lock:
        assert gpu_stack.registrar.expires_at(agent.measurement) > chain_now(gpu_stack)
        with pytest.raises(RegistrationError, match="gpu"):
            registrar.register("sum", agent.measurement)
        no_gpu = dataclasses.replace(gpu_stack.registrar, policy="gpu-h100-cc", gpus=None)
        with pytest.raises(RegistrationError, match="gpu"):
            no_gpu.register("sum", agent.measurement)


def test_the_demo_attests_the_simulated_gpu(gpu_stack: DevStack) -> None:
    steps = {s.step: s for s in gpu_stack.demo(deadline_s=30)}
    assert steps["sum over HTTP"].ok, steps["sum over HTTP"].detail
    assert "1 GPU attested" in steps["sum over HTTP"].detail
    assert steps["sum on chain"].ok


class CountingPayout:
    def __init__(self, fail: bool = False) -> None:
        self.sweeps = 0
        self.fail = fail

    def sweep(self) -> Swept:
        self.sweeps += 1
        if self.fail:
            raise ChainUnavailableError("node down")
        return Swept({}, 0)


def test_the_process_sweeps_earnings_periodically_and_at_shutdown() -> None:
    clock = [0.0]
    payout = CountingPayout()
    process = WorkerProcess(
        CountingWorker(), FailingRegistrar(), DownPeers(), [],  # type: ignore[arg-type]
        monotonic=lambda: clock[0], payout=payout, payout_every_s=100,  # type: ignore[arg-type]
    )  # fmt: skip
    process.tick()
    assert payout.sweeps == 0
    clock[0] = 100
    process.tick()
    assert payout.sweeps == 1
    stop = threading.Event()
    stop.set()
    process.run(stop)  # stopping sweeps one last time
    assert payout.sweeps == 2


def test_a_failing_sweep_is_logged_and_retried_later() -> None:
    payout = CountingPayout(fail=True)
    process = WorkerProcess(
        CountingWorker(), FailingRegistrar(), DownPeers(), [],  # type: ignore[arg-type]
        payout=payout,  # type: ignore[arg-type]
    )  # fmt: skip
    process.sweep()
    process.sweep()
    assert payout.sweeps == 2
