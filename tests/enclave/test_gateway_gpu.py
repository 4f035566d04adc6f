"""The gateway's combined evidence: with a GPU source its attestation carries GPU reports over
`gpu_nonce(nonce)`, which the caller verifies with the quote; a relay's stale GPU report, a
missing GPU or an untrusted GPU root is rejected; `verify --url` reports each GPU."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from agents.runtime import AgentRuntime
from attestation import Policy, TrustAnchor
from attestation.bundle import EvidenceBundle
from attestation.evidence import verify_bundle
from attestation.gpu import gpu_nonce, nvidia_device_root, parse_gpu_report
from attestation.verdict import explain_quote
from attestation.verify import QuoteVerifier
from enclava.call_commands import gateway_checks
from enclava.evidence import gpu_trust_anchors
from enclava.gateway_commands import GpuKind, open_gpus
from enclave.errors import TeeUnavailableError
from enclave.gateway import create_app, measure_agents_into
from enclave.gateway_client import Attestation, GatewayVerificationError, VerifiedGateway
from enclave.keys import EnclaveKeys
from enclave.tee.gpu import GpuEvidence, GpuSource
from enclave.tee.sim import SimulatedTdx
from enclave.tee.sim_gpu import SimulatedGpu, load_gpu_trust_anchor
from tests.enclave.conftest import CHAIN_ID, NOW, AsgiTransport, TamperingTransport, Worker

GPU_POLICY = Policy(
    allow_simulated=True, allow_simulated_gpu=True, require_gpus=1, gpu_models=frozenset({"GH100"})
)


def gpu_worker(agents: dict[str, AgentRuntime], gpus: GpuSource | None) -> Worker:
    tee, keys = SimulatedTdx(now=NOW), EnclaveKeys.generate()
    measure_agents_into(tee, agents)
    app = create_app(tee=tee, keys=keys, agents=agents, chain_id=CHAIN_ID, gpus=gpus)
    return Worker(tee, keys, app, AsgiTransport(app))


@pytest.fixture(scope="module")
def sim_gpu() -> SimulatedGpu:
    return SimulatedGpu(now=NOW)


@pytest.fixture
def worker(sum_agent: AgentRuntime, sim_gpu: SimulatedGpu) -> Worker:
    return gpu_worker({"sum": sum_agent}, sim_gpu)


def verify(
    worker: Worker,
    anchors: tuple[TrustAnchor, ...],
    *,
    transport: httpx.BaseTransport | None = None,
    policy: Policy = GPU_POLICY,
) -> VerifiedGateway:
    client = worker.client(transport)
    nonce = secrets.token_bytes(32)
    return client.verify_attestation(
        client.attest(nonce),
        nonce,
        collateral=worker.tee.collateral(now=NOW),
        now=NOW,
        trust_anchor=worker.tee.trust_anchor,
        policy=policy,
        expected_measurement=None,
        gpu_trust_anchors=anchors,
    )


def test_attestation_carries_gpu_reports_over_the_gpu_nonce(
    worker: Worker, sim_gpu: SimulatedGpu
) -> None:
    nonce = secrets.token_bytes(32)
    with worker.http() as http:
        doc = http.get("/v1/attestation", params={"nonce": nonce.hex()}).json()
    (gpu,) = doc["gpus"]
    assert gpu["uuid"] == sim_gpu.uuid and gpu["arch"] == "hopper"
    assert gpu["cc_state"] == {"enabled": True, "devtools": False, "environment": "sim"}
    bundle = EvidenceBundle.from_json(doc)
    assert parse_gpu_report(bundle.gpus[0].report).nonce == gpu_nonce(nonce)
    result = verify_bundle(
        bundle,
        nonce=nonce,
        collateral=worker.tee.collateral(now=NOW),
        now=NOW,
        cpu_trust_anchor=worker.tee.trust_anchor,
        gpu_trust_anchors=(nvidia_device_root(), sim_gpu.trust_anchor),
        policy=GPU_POLICY,
    )
    assert result.accepted, result.decision.reasons
    assert [a.name for a in result.agents] == ["sum"]


def test_caller_verifies_the_quote_and_the_gpu_together(
    worker: Worker, sim_gpu: SimulatedGpu
) -> None:
    verified = verify(worker, (nvidia_device_root(), sim_gpu.trust_anchor))
    (gpu,) = verified.gpus
    assert gpu.accepted and gpu.facts()["model"] == "GH100" and gpu.facts()["simulated"]
    assert "sum" in verified.agents


def test_simulated_gpu_fails_against_nvidias_root(worker: Worker) -> None:
    with pytest.raises(GatewayVerificationError) as caught:
        verify(worker, (nvidia_device_root(),))
    assert caught.value.check == "gpu" and "gpu[0]: chain.path" in str(caught.value)


def test_relayed_gpu_report_from_another_nonce_is_rejected(
    worker: Worker, sim_gpu: SimulatedGpu
) -> None:
    stale = gpus_for(worker)

    def swap_gpus(request: httpx.Request, body: bytes) -> bytes:
        return json.dumps({**json.loads(body), "gpus": stale}).encode()

    relay = TamperingTransport(worker.transport, swap_gpus)
    with pytest.raises(GatewayVerificationError) as caught:
        verify(worker, (nvidia_device_root(), sim_gpu.trust_anchor), transport=relay)
    assert caught.value.check == "gpu" and "gpu[0]: report.nonce" in str(caught.value)


def test_gateway_without_gpus_lists_none_and_fails_a_policy_requiring_one(
    sum_agent: AgentRuntime,
) -> None:
    worker = gpu_worker({"sum": sum_agent}, None)
    with worker.http() as http:
        assert http.get("/v1/attestation", params={"nonce": "00" * 32}).json()["gpus"] == []
    assert verify(worker, (nvidia_device_root(),), policy=Policy(allow_simulated=True)).gpus == ()
    with pytest.raises(GatewayVerificationError) as caught:
        verify(worker, (nvidia_device_root(),))
    assert caught.value.check == "gpu" and "0 attested GPU(s)" in str(caught.value)


class BrokenGpus:
    def collect(self, nonce: bytes) -> tuple[GpuEvidence, ...]:
        raise TeeUnavailableError("NVML sees no NVIDIA GPU")


def test_gpu_source_failure_is_a_503(sum_agent: AgentRuntime) -> None:
    worker = gpu_worker({"sum": sum_agent}, BrokenGpus())
    with worker.http() as http:
        response = http.get("/v1/attestation", params={"nonce": "00" * 32})
    assert response.status_code == 503
    assert "GPUs produced no report" in response.json()["error"]["message"]


def test_verify_url_checks_report_each_gpu(worker: Worker, sim_gpu: SimulatedGpu) -> None:
    nonce = secrets.token_bytes(32)
    att = worker.client().attest(nonce)
    verdict = explain_quote(
        att.quote,
        worker.tee.collateral(now=NOW),
        now=NOW,
        policy=GPU_POLICY,
        verifier=QuoteVerifier(worker.tee.trust_anchor),
    )
    anchors = (nvidia_device_root(), sim_gpu.trust_anchor)
    checks = gateway_checks(att, nonce, verdict, policy=GPU_POLICY, gpu_anchors=anchors, now=NOW)
    assert {k: v["status"] for k, v in checks.items()} == {
        "binding": "pass",
        "event_log": "pass",
        "gpu[0]": "pass",
        "gpus": "pass",
    }
    assert checks["gpu[0]"]["model"] == "GH100" and checks["gpu[0]"]["cc_state"] == "on"
    assert checks["gpu[0]"]["fwid"] == sim_gpu.fwid.hex()
    stale = Attestation.from_json({**attestation_doc(worker, nonce), "gpus": gpus_for(worker)})
    failed = gateway_checks(stale, nonce, verdict, policy=GPU_POLICY, gpu_anchors=anchors, now=NOW)
    assert failed["gpu[0]"]["status"] == "fail" and "report.nonce" in failed["gpu[0]"]["detail"]
    assert failed["gpus"]["status"] == "fail"


def attestation_doc(worker: Worker, nonce: bytes) -> dict[str, object]:
    with worker.http() as http:
        doc: dict[str, object] = http.get("/v1/attestation", params={"nonce": nonce.hex()}).json()
    return doc


def gpus_for(worker: Worker) -> object:
    return attestation_doc(worker, secrets.token_bytes(32))["gpus"]


def test_gpu_option_builds_the_simulated_gpu_in_the_state_directory(tmp_path: Path) -> None:
    assert open_gpus(GpuKind.NONE, tmp_path) is None
    gpus = open_gpus(GpuKind.SIM, tmp_path)
    assert isinstance(gpus, SimulatedGpu)
    root = load_gpu_trust_anchor(tmp_path / "sim")
    assert root == gpus.trust_anchor
    assert gpu_trust_anchors(True, tmp_path) == (nvidia_device_root(), root)
    assert gpu_trust_anchors(False, tmp_path) == (nvidia_device_root(),)
    assert gpu_trust_anchors(True, tmp_path / "empty") == (nvidia_device_root(),)
