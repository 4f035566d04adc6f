"""POST /v1/verify with GPU evidence: the simulated TDX + simulated H100 bundle is accepted with a
result per GPU, the GPU facts in the token and the bundle's digest as the verdict's quoteHash; a
GPU report over another nonce, missing GPUs or CC off are rejected; `gpu-h100-cc` is named."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest

from attestation.bundle import BundleGpu, bundle_digest
from attestation.errors import PolicyFormatError
from attestation.gpu import gpu_nonce
from attestation.pki import TrustAnchor
from attestation.policy import Policy
from attestation.service import (
    CollateralProvider,
    OfflineUpstream,
    ServiceKeys,
    TrustDomain,
    create_app,
    simulator_domain,
)
from attestation.service.policies import GPU_H100_CC, PolicySet
from enclave.tee.gpu import bundle_gpu
from enclave.tee.sim_gpu import SimulatedGpu
from tests.attestation.service.conftest import Clock, SimWorker, client_for, settings
from tests.samples import SAMPLES

H100_CC_SIM = {
    "allow_simulated": True,
    "allow_simulated_gpu": True,
    "require_gpus": 1,
    "gpu_models": ["GH100"],
}
DOMAIN = {"chain_id": 1, "verifying_contract": "0x" + "12" * 20}

pytestmark = pytest.mark.anyio


@pytest.fixture
def gpu(real_now: datetime) -> SimulatedGpu:
    return SimulatedGpu(now=real_now)


@pytest.fixture
async def client(
    sim_worker: SimWorker, gpu: SimulatedGpu, service_keys: ServiceKeys, real_now: datetime
) -> Any:
    app = create_app(
        settings(dev=True),
        signing=service_keys,
        dev_domains=[simulator_domain(sim_worker.sim, gpu=gpu)],
        clock=Clock(real_now),
    )
    async with client_for(app) as c:
        yield c


def evidence(gpu: SimulatedGpu, nonce: bytes, **cc: bool) -> list[dict[str, Any]]:
    items = [bundle_gpu(e).to_json() for e in gpu.collect(gpu_nonce(nonce))]
    for item in items:
        item["cc_state"].update(cc)
    return items


async def verify(client: httpx.AsyncClient, worker: SimWorker, **extra: Any) -> dict[str, Any]:
    response = await client.post("/v1/verify", json=worker.request(**extra))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_simulated_cpu_and_gpu_bundle_is_accepted_with_gpu_facts_in_the_token(
    client: httpx.AsyncClient, sim_worker: SimWorker, gpu: SimulatedGpu
) -> None:
    gpus = evidence(gpu, sim_worker.nonce)
    body = await verify(client, sim_worker, gpu_evidence=gpus, policy=None, verdict_domain=DOMAIN)
    assert not body["accepted"]  # the default policy trusts neither simulator
    assert any(r.startswith("gpu[0]: gpu.trust_anchor:") for r in body["reasons"])
    body = await verify(client, sim_worker, gpu_evidence=gpus, verdict_domain=DOMAIN)
    assert body["accepted"], body["reasons"]
    (result,) = body["gpus"]
    assert result["accepted"] and result["model"] == "GH100" and result["fwid"] == gpu.fwid.hex()
    assert result["cc_enabled"] and result["simulated"] and result["error"] is None
    assert any(r.startswith("allow_simulated_gpu") for r in body["relaxations"])
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["gpus"][0]["model"] == "GH100" and claims["gpus"][0]["cc_enabled"] is True
    assert claims["gpus"][0]["driver_version"] == "550.90.07"
    expected = bundle_digest(sim_worker.quote, [BundleGpu.from_json(g) for g in gpus]).hex()
    assert claims["bundle_sha256"] == body["bundle_sha256"] == expected
    assert body["signed_verdict"]["quote_hash"] == "0x" + expected != "0x" + body["quote_sha256"]


async def test_gpu_report_bound_to_another_nonce_is_rejected(
    client: httpx.AsyncClient, sim_worker: SimWorker, gpu: SimulatedGpu
) -> None:
    body = await verify(client, sim_worker, gpu_evidence=evidence(gpu, bytes(32)))
    assert body["verified"] and not body["accepted"] and body["token"] is None
    (result,) = body["gpus"]
    assert not result["verified"] and result["error"]["check"] == "report.nonce"
    assert result["error"]["code"] == "gpu_nonce_mismatch"
    assert any(r.startswith("gpu[0]: report.nonce:") for r in body["reasons"])


async def test_policy_requiring_an_h100_in_cc_mode_rejects_no_gpus_and_cc_off(
    client: httpx.AsyncClient, sim_worker: SimWorker, gpu: SimulatedGpu
) -> None:
    without = await verify(client, sim_worker, policy=H100_CC_SIM)
    assert not without["accepted"] and without["gpus"] == []
    assert "gpus: 0 attested GPU(s), the policy requires 1" in without["reasons"]
    assert without["bundle_sha256"] == without["quote_sha256"]
    off = evidence(gpu, sim_worker.nonce, enabled=False)
    body = await verify(client, sim_worker, policy=H100_CC_SIM, gpu_evidence=off)
    assert not body["accepted"]
    assert body["gpus"][0]["verified"] and not body["gpus"][0]["accepted"]
    assert any("gpu.cc: confidential computing is off" in r for r in body["reasons"])
    on = evidence(gpu, sim_worker.nonce)
    assert (await verify(client, sim_worker, policy=H100_CC_SIM, gpu_evidence=on))["accepted"]


async def test_gpu_evidence_needs_a_binding_nonce_and_well_formed_reports(
    client: httpx.AsyncClient, sim_worker: SimWorker, gpu: SimulatedGpu
) -> None:
    request = sim_worker.request(gpu_evidence=evidence(gpu, sim_worker.nonce))
    unbound = {k: v for k, v in request.items() if k != "binding"}
    response = await client.post("/v1/verify", json=unbound)
    assert response.status_code == 422 and "gpu_evidence needs binding" in response.text
    broken = [{**request["gpu_evidence"][0], "report": "%%%"}]
    response = await client.post("/v1/verify", json={**request, "gpu_evidence": broken})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "malformed_gpu_evidence"


async def test_gpu_h100_cc_is_a_named_policy_and_simulated_gpus_need_dev(
    client: httpx.AsyncClient,
) -> None:
    listed = {p["name"]: p for p in (await client.get("/v1/policies")).json()["policies"]}
    doc = listed["gpu-h100-cc"]["policy"]
    assert (doc["require_gpus"], doc["gpu_models"], doc["require_gpu_cc"]) == (1, ["GH100"], True)
    assert Policy.from_mapping(doc) == GPU_H100_CC and not listed["gpu-h100-cc"]["relaxations"]
    assert listed["dev"]["policy"]["allow_simulated_gpu"]
    with pytest.raises(PolicyFormatError, match="simulated TEEs or GPUs"):
        PolicySet.from_settings(settings(policies={"lax": {"allow_simulated_gpu": True}}))


async def test_a_simulated_gpu_root_needs_a_dev_configuration(
    gpu: SimulatedGpu, service_keys: ServiceKeys
) -> None:
    domain = TrustDomain(TrustAnchor.intel(), OfflineUpstream(SAMPLES), gpu.trust_anchor)
    with pytest.raises(ValueError, match="simulated GPU roots need a dev configuration"):
        create_app(settings(), signing=service_keys, collateral=CollateralProvider([domain]))
