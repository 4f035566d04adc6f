"""The simulated H100: its reports go through the real GPU verifier, rooted in its own CA."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestation.gpu import (
    GpuCertificateError,
    GpuMeasurementError,
    GpuNonceError,
    GpuSignatureError,
    RimSet,
    gpu_nonce,
    nvidia_device_root,
    parse_rim,
    verify_gpu_report,
)
from enclave.errors import SealingError, TeeUnavailableError
from enclave.tee.nvml import check_gpu_report
from enclave.tee.sim_gpu import STATE_FILE, SimulatedGpu, load_gpu_trust_anchor
from tests.attestation.gpu.rim_xml import rim_xml

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def gpu(tmp_path: Path) -> SimulatedGpu:
    return SimulatedGpu(tmp_path / "gpu", now=NOW)


def test_report_verifies_with_the_simulator_root_and_says_simulated(gpu: SimulatedGpu) -> None:
    nonce = gpu_nonce(secrets.token_bytes(32))
    verified = verify_gpu_report(
        gpu.attestation_report(nonce),
        gpu.certificate_chain,
        nonce=nonce,
        now=NOW,
        trust_anchor=gpu.trust_anchor,
    )
    assert verified.simulated and verified.trust_anchor.startswith("Enclava GPU simulator root")
    assert (verified.model, verified.arch, verified.cc_feature) == ("GH100", "Hopper", "SPT")
    assert verified.fwid == gpu.fwid and verified.nonce == nonce
    assert (verified.driver_version, verified.vbios_version) == ("550.90.07", gpu.vbios_version)
    assert {b.index: b.value for b in verified.measurements} == gpu.measurements


def test_report_bound_to_another_nonce_is_rejected(gpu: SimulatedGpu) -> None:
    report = gpu.attestation_report(gpu_nonce(bytes(32)))
    with pytest.raises(GpuNonceError):
        verify_gpu_report(
            report,
            gpu.certificate_chain,
            nonce=gpu_nonce(b"\x01" * 32),
            now=NOW,
            trust_anchor=gpu.trust_anchor,
        )


def test_simulated_report_does_not_verify_to_the_nvidia_root(gpu: SimulatedGpu) -> None:
    nonce = bytes(32)
    with pytest.raises(GpuCertificateError):
        verify_gpu_report(
            gpu.attestation_report(nonce),
            gpu.certificate_chain,
            nonce=nonce,
            now=NOW,
            trust_anchor=nvidia_device_root(),
        )


def test_another_gpus_chain_does_not_verify_this_report(gpu: SimulatedGpu) -> None:
    other = SimulatedGpu(now=NOW)
    nonce = bytes(32)
    with pytest.raises(GpuSignatureError):
        verify_gpu_report(
            gpu.attestation_report(nonce),
            other.certificate_chain,
            nonce=nonce,
            now=NOW,
            trust_anchor=other.trust_anchor,
        )


def test_device_persists_and_each_boot_certifies_a_new_attestation_key(tmp_path: Path) -> None:
    first = SimulatedGpu(tmp_path, now=NOW)
    second = SimulatedGpu(tmp_path, now=NOW)
    assert first.trust_anchor == second.trust_anchor == load_gpu_trust_anchor(tmp_path)
    assert first.certificate_chain != second.certificate_chain
    nonce = bytes(32)
    verify_gpu_report(
        second.attestation_report(nonce),
        second.certificate_chain,
        nonce=nonce,
        now=NOW,
        trust_anchor=first.trust_anchor,
    )
    assert oct((tmp_path / STATE_FILE).stat().st_mode & 0o777) == "0o600"


def test_firmware_decides_fwid_and_measurements() -> None:
    a, b = SimulatedGpu(now=NOW), SimulatedGpu(now=NOW)
    patched = SimulatedGpu(now=NOW, firmware="patched")
    assert (a.fwid, a.measurements) == (b.fwid, b.measurements)
    assert a.fwid != patched.fwid
    assert set(a.measurements.values()).isdisjoint(patched.measurements.values())


def test_rims_written_for_the_firmware_match_and_catch_other_firmware() -> None:
    gpu = SimulatedGpu(now=NOW)
    golden = {i - 1: [v] for i, v in gpu.measurements.items()}
    rims = RimSet.of(
        [
            parse_rim(rim_xml(gpu.driver_version, dict(list(golden.items())[32:]))),
            parse_rim(rim_xml(gpu.vbios_version, dict(list(golden.items())[:32]))),
        ]
    )
    nonce = bytes(32)
    verified = verify_gpu_report(
        gpu.attestation_report(nonce),
        gpu.certificate_chain,
        nonce=nonce,
        now=NOW,
        trust_anchor=gpu.trust_anchor,
        rims=rims,
    )
    assert verified.rim is not None and verified.rim.skipped == (36,)
    patched = SimulatedGpu(now=NOW, firmware="patched")
    with pytest.raises(GpuMeasurementError):
        verify_gpu_report(
            patched.attestation_report(nonce),
            patched.certificate_chain,
            nonce=nonce,
            now=NOW,
            trust_anchor=patched.trust_anchor,
            rims=rims,
        )


def test_collect_returns_nvml_shaped_evidence(gpu: SimulatedGpu) -> None:
    nonce = secrets.token_bytes(32)
    (evidence,) = gpu.collect(nonce)
    assert (evidence.index, evidence.arch, evidence.uuid) == (0, "hopper", gpu.uuid)
    assert evidence.cc_state.enabled and not evidence.cc_state.devtools
    assert evidence.cc_state.environment == "sim"
    assert check_gpu_report(evidence.report, nonce, source="sim") == evidence.report
    assert evidence.cert_chain == gpu.certificate_chain


def test_nonce_must_be_32_bytes(gpu: SimulatedGpu) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        gpu.attestation_report(b"short")


def test_trust_anchor_of_a_missing_or_corrupt_state(tmp_path: Path) -> None:
    with pytest.raises(TeeUnavailableError):
        load_gpu_trust_anchor(tmp_path)
    (tmp_path / STATE_FILE).write_text("{}")
    with pytest.raises(SealingError):
        load_gpu_trust_anchor(tmp_path)
    with pytest.raises(SealingError):
        SimulatedGpu(tmp_path, now=NOW)
