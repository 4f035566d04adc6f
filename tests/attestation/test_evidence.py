"""Combined CPU + GPU evidence: a bundle from the simulated TDX and the simulated H100 verifies
end to end; a GPU report over another nonce, missing GPUs, CC off or an unallowed simulated GPU
reject it with a per-device reason; the real H100 sample's facts come through."""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime

import pytest

from attestation.bundle import BundleGpu, EvidenceBundle, GpuCcState, bundle_digest
from attestation.errors import BundleFormatError, PolicyFormatError
from attestation.evidence import VerifiedBundle, gpu_anchor_for, verify_bundle, verify_gpus
from attestation.gpu import gpu_nonce, nvidia_device_root
from attestation.policy import Policy
from enclave.keys import EnclaveKeys
from enclave.tee.gpu import bundle_gpu
from enclave.tee.sim import SimulatedTdx
from enclave.tee.sim_gpu import SimulatedGpu
from tests.attestation.gpu.samples import REPORT_FWID, REPORT_NONCE, chain, report

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CC_ON = GpuCcState(enabled=True, devtools=False, environment="prod")
H100_CC = Policy(
    allow_simulated=True, allow_simulated_gpu=True, require_gpus=1, gpu_models=frozenset({"GH100"})
)


@dataclasses.dataclass(frozen=True)
class Machine:
    tdx: SimulatedTdx
    gpu: SimulatedGpu
    keys: EnclaveKeys

    def bundle(self, nonce: bytes, *, gpu_nonce_of: bytes | None = None) -> EvidenceBundle:
        """The worker's bundle for `nonce`; its GPU answers `gpu_nonce_of` (default `nonce`)."""
        gpus = self.gpu.collect(gpu_nonce(gpu_nonce_of or nonce))
        return EvidenceBundle(
            tee=self.tdx.kind,
            quote=self.tdx.quote(self.keys.report_data(nonce)),
            event_log=self.tdx.event_log(),
            nonce=nonce,
            address=self.keys.address,
            x25519_public=self.keys.x25519_public,
            gpus=tuple(bundle_gpu(g) for g in gpus),
        )

    def verify(
        self, bundle: EvidenceBundle, nonce: bytes, policy: Policy = H100_CC
    ) -> VerifiedBundle:
        return verify_bundle(
            bundle,
            nonce=nonce,
            collateral=self.tdx.collateral(now=NOW),
            now=NOW,
            cpu_trust_anchor=self.tdx.trust_anchor,
            gpu_trust_anchors=(nvidia_device_root(), self.gpu.trust_anchor),
            policy=policy,
        )


@pytest.fixture(scope="module")
def machine() -> Machine:
    return Machine(SimulatedTdx(now=NOW), SimulatedGpu(now=NOW), EnclaveKeys.generate())


def with_cc(bundle: EvidenceBundle, state: GpuCcState) -> EvidenceBundle:
    gpus = tuple(dataclasses.replace(g, cc_state=state) for g in bundle.gpus)
    return dataclasses.replace(bundle, gpus=gpus)


def test_simulated_tdx_and_gpu_bundle_verifies_end_to_end(machine: Machine) -> None:
    nonce = secrets.token_bytes(32)
    bundle = machine.bundle(nonce)
    result = machine.verify(bundle, nonce)
    assert result.accepted, result.decision.reasons
    assert result.cpu.simulated and result.cpu.tee == "tdx"
    (gpu,) = result.gpus
    assert gpu.accepted and gpu.verified is not None and gpu.verified.nonce == gpu_nonce(nonce)
    facts = gpu.facts()
    assert (facts["model"], facts["fwid"], facts["cc_enabled"]) == (
        "GH100",
        machine.gpu.fwid.hex(),
        True,
    )
    assert facts["simulated"] and facts["driver_version"] == "550.90.07"
    relaxations = " ".join(result.decision.relaxations)
    assert "allow_simulated:" in relaxations and "allow_simulated_gpu" in relaxations
    assert result.to_dict()["gpus"][0]["accepted"] is True


def test_bundle_round_trips_through_json_and_its_digest_covers_the_gpus(machine: Machine) -> None:
    nonce = secrets.token_bytes(32)
    bundle = machine.bundle(nonce)
    text = json.dumps(bundle.to_json())
    again = EvidenceBundle.from_json(json.loads(text))
    assert again == bundle
    verified = machine.verify(again, nonce)
    assert verified.accepted
    assert verified.digest == bundle_digest(bundle.quote, bundle.gpus)
    assert verified.digest.hex() != verified.cpu.quote_sha256
    assert bundle_digest(bundle.quote, ()).hex() == verified.cpu.quote_sha256
    assert bundle_digest(bundle.quote, with_cc(bundle, CC_ON).gpus) != verified.digest


def test_gpu_report_bound_to_another_nonce_rejects_the_bundle(machine: Machine) -> None:
    nonce, other = secrets.token_bytes(32), secrets.token_bytes(32)
    result = machine.verify(machine.bundle(nonce, gpu_nonce_of=other), nonce)
    assert not result.accepted
    (gpu,) = result.gpus
    assert gpu.verified is None and gpu.check == "report.nonce"
    assert gpu.error is not None and gpu.error.code == "gpu_nonce_mismatch"
    assert result.decision.reasons[0].startswith("gpu[0]: report.nonce: report answers nonce")
    assert result.to_dict()["gpus"][0]["error"]["check"] == "report.nonce"


def test_policy_requiring_an_h100_in_cc_mode_rejects_a_bundle_without_gpus(
    machine: Machine,
) -> None:
    nonce = secrets.token_bytes(32)
    bundle = dataclasses.replace(machine.bundle(nonce), gpus=())
    result = machine.verify(bundle, nonce)
    assert not result.accepted and result.gpus == ()
    assert result.decision.reasons == ("gpus: 0 attested GPU(s), the policy requires 1",)
    assert machine.verify(bundle, nonce, dataclasses.replace(H100_CC, require_gpus=0)).accepted


def test_policy_requiring_cc_rejects_a_gpu_whose_cc_state_is_off(machine: Machine) -> None:
    nonce = secrets.token_bytes(32)
    off = with_cc(machine.bundle(nonce), GpuCcState(False, False, "prod"))
    result = machine.verify(off, nonce)
    assert not result.accepted
    assert result.gpus[0].verified is not None  # the report itself is genuine
    assert "gpu[0]: gpu.cc: confidential computing is off" in result.decision.reasons[0]
    assert "gpus: 0 attested GPU(s)" in result.decision.reasons[1]
    devtools = with_cc(machine.bundle(nonce), GpuCcState(True, True, "prod"))
    assert "developer-tools" in machine.verify(devtools, nonce).decision.reasons[0]


def test_simulated_gpu_is_rejected_unless_allowed(machine: Machine) -> None:
    nonce = secrets.token_bytes(32)
    strict = dataclasses.replace(H100_CC, allow_simulated_gpu=False)
    result = machine.verify(machine.bundle(nonce), nonce, strict)
    assert not result.accepted
    assert "not NVIDIA (allow_simulated_gpu off)" in result.decision.reasons[0]
    assert not any("allow_simulated_gpu" in r for r in result.decision.relaxations)


def test_gpu_model_allow_list_and_driver_minimum_apply(machine: Machine) -> None:
    nonce = secrets.token_bytes(32)
    bundle = machine.bundle(nonce)
    other_model = dataclasses.replace(H100_CC, gpu_models=frozenset({"GB100"}))
    assert (
        "gpu.model: GH100 is not in the allow-list (GB100)"
        in (machine.verify(bundle, nonce, other_model).decision.reasons[0])
    )
    newer = dataclasses.replace(H100_CC, min_gpu_driver_version="550.127.5")
    assert "below the minimum 550.127.5" in machine.verify(bundle, nonce, newer).decision.reasons[0]
    older = dataclasses.replace(H100_CC, min_gpu_driver_version="550.90.7")
    assert machine.verify(bundle, nonce, older).accepted


def test_quote_binding_another_nonce_is_a_binding_reason(machine: Machine) -> None:
    nonce, other = secrets.token_bytes(32), secrets.token_bytes(32)
    bundle = dataclasses.replace(machine.bundle(other, gpu_nonce_of=nonce), nonce=nonce)
    result = machine.verify(bundle, nonce)
    assert [r.split(":")[0] for r in result.decision.reasons] == ["binding"]


def test_real_h100_sample_in_a_bundle_shows_its_model_and_fwid() -> None:
    """The sample answers its own SPDM nonce (no request nonce maps to it): verified with that
    nonce it gives NVIDIA's facts; against a bundle's nonce it is a replay."""
    sample = BundleGpu(report(), chain(1), CC_ON, uuid="GPU-sample", arch="hopper")
    sim_root = SimulatedGpu(now=NOW).trust_anchor
    anchors = (sim_root, nvidia_device_root())
    assert gpu_anchor_for(sample.cert_chain, anchors) == anchors[1]
    policy = Policy(require_gpus=1, gpu_models=frozenset({"GH100"}))
    (ok,) = verify_gpus(
        [sample], spdm_nonce=REPORT_NONCE, now=NOW, trust_anchors=anchors, policy=policy
    )
    assert ok.accepted and ok.verified is not None and ok.verified.fwid == REPORT_FWID
    facts = ok.facts()
    assert (facts["model"], facts["arch"], facts["simulated"]) == ("GH100", "Hopper", False)
    assert facts["trust_anchor"]["sha256"] == nvidia_device_root().fingerprint
    (replayed,) = verify_gpus(
        [sample],
        spdm_nonce=gpu_nonce(secrets.token_bytes(32)),
        now=NOW,
        trust_anchors=anchors,
        policy=policy,
    )
    assert replayed.check == "report.nonce" and not replayed.accepted


def test_malformed_bundle_json_is_a_typed_error(machine: Machine) -> None:
    doc = machine.bundle(bytes(32)).to_json()
    for broken in (
        {**doc, "quote": "not base64!"},
        {**doc, "gpus": {"not": "a list"}},
        {**doc, "gpus": [{**doc["gpus"][0], "cc_state": {"enabled": "yes"}}]},
        {k: v for k, v in doc.items() if k != "address"},
    ):
        with pytest.raises(BundleFormatError) as err:
            EvidenceBundle.from_json(broken)
        assert err.value.code == "malformed_bundle"
    older = {k: v for k, v in doc.items() if k != "gpus"}
    assert EvidenceBundle.from_json(older).gpus == ()


def test_policy_file_accepts_the_gpu_keys() -> None:
    policy = Policy.from_mapping(
        {
            "require_gpus": 2,
            "gpu_models": ["GH100"],
            "require_gpu_cc": True,
            "allow_gpu_devtools": True,
            "min_gpu_driver_version": "550.90.07",
            "allow_simulated_gpu": True,
        }
    )
    assert policy.require_gpus == 2 and policy.gpu_models == frozenset({"GH100"})
    assert policy.min_gpu_driver_version == "550.90.07"
    assert {r.split(":")[0] for r in policy.relaxations} == {
        "allow_simulated_gpu",
        "allow_gpu_devtools",
    }
    for bad in ({"min_gpu_driver_version": "r550"}, {"require_gpus": -1}, {"gpu_model": ["x"]}):
        with pytest.raises(PolicyFormatError):
            Policy.from_mapping(bad)
