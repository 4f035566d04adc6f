"""Collecting GPU evidence through NVML, against recorded H100 responses (`FakeNvml`)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from attestation.gpu import nvidia_device_root, verify_gpu_report
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.tee.gpu import CcState
from enclave.tee.nvml import NvmlGpus
from tests.attestation.gpu.samples import NOW, REPORT_FWID, REPORT_NONCE, chain, report
from tests.enclave import fake_nvml
from tests.enclave.fake_nvml import FakeNvml


def test_collected_evidence_verifies_against_the_nvidia_root() -> None:
    (evidence,) = NvmlGpus(FakeNvml()).collect(REPORT_NONCE)
    assert evidence.report == report() and evidence.cert_chain == chain(1)
    assert (evidence.index, evidence.arch) == (0, "hopper")
    assert evidence.uuid == "GPU-11112222-3333-4444-5555-handle-0"
    assert evidence.cc_state == CcState(enabled=True, devtools=False, environment="prod")
    verified = verify_gpu_report(
        evidence.report,
        evidence.cert_chain,
        nonce=REPORT_NONCE,
        now=NOW,
        trust_anchor=nvidia_device_root(),
    )
    assert verified.fwid == REPORT_FWID


def test_nonce_is_passed_to_the_gpu_and_the_session_is_closed() -> None:
    nvml = FakeNvml()
    NvmlGpus(nvml).collect(REPORT_NONCE)
    names = [name for name, _ in nvml.calls]
    assert names[0] == "nvmlInit" and names[-1] == "nvmlShutdown"
    (args,) = [a for n, a in nvml.calls if n == "nvmlDeviceGetConfComputeGpuAttestationReport"]
    assert args == ("handle-0", REPORT_NONCE)


def test_every_gpu_contributes_evidence() -> None:
    evidence = NvmlGpus(FakeNvml(gpus=2)).collect(REPORT_NONCE)
    assert [e.index for e in evidence] == [0, 1]


def test_cc_off_is_an_explicit_state_and_collection_refuses() -> None:
    nvml = FakeNvml(cc_feature=0, environment=0)
    gpus = NvmlGpus(nvml)
    assert gpus.cc_state() == CcState(enabled=False, devtools=False, environment="unavailable")
    with pytest.raises(TeeUnavailableError, match="confidential computing is off"):
        gpus.collect(REPORT_NONCE)
    assert not any(n.startswith("nvmlDeviceGetConfCompute") for n, _ in nvml.calls)
    assert nvml.calls[-1][0] == "nvmlShutdown"


def test_devtools_mode_is_reported_for_the_policy_to_judge() -> None:
    (evidence,) = NvmlGpus(FakeNvml(devtools=1)).collect(REPORT_NONCE)
    assert evidence.cc_state.devtools


def test_no_gpu_is_unavailable() -> None:
    with pytest.raises(TeeUnavailableError, match="no NVIDIA GPU"):
        NvmlGpus(FakeNvml(gpus=0)).collect(REPORT_NONCE)


@pytest.mark.parametrize(
    ("function", "code", "error"),
    [
        ("nvmlInit", FakeNvml.NVML_ERROR_LIBRARY_NOT_FOUND, TeeUnavailableError),
        ("nvmlInit", FakeNvml.NVML_ERROR_DRIVER_NOT_LOADED, TeeUnavailableError),
        ("nvmlSystemGetConfComputeState", FakeNvml.NVML_ERROR_NOT_SUPPORTED, TeeUnavailableError),
        ("nvmlDeviceGetConfComputeGpuAttestationReport", 999, TeeProtocolError),
        ("nvmlDeviceGetConfComputeGpuCertificate", 999, TeeProtocolError),
    ],
)
def test_nvml_errors_become_typed_errors(function: str, code: int, error: type[Exception]) -> None:
    nvml = FakeNvml(fail={function: code})
    with pytest.raises(error, match=function):
        NvmlGpus(nvml).collect(REPORT_NONCE)
    if function != "nvmlInit":
        assert nvml.calls[-1][0] == "nvmlShutdown"


def test_report_over_another_nonce_is_a_protocol_error() -> None:
    with pytest.raises(TeeProtocolError, match="another nonce"):
        NvmlGpus(FakeNvml()).collect(bytes(32))


@pytest.mark.parametrize("size", [0, 1000, 0x2001])
def test_reported_sizes_are_checked(size: int) -> None:
    error = "malformed report" if size == 1000 else "outside the buffer"
    with pytest.raises(TeeProtocolError, match=error):
        NvmlGpus(FakeNvml(report_size=size)).collect(REPORT_NONCE)


def test_nonce_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        NvmlGpus(FakeNvml()).collect(b"short")


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="this machine has an NVIDIA driver")
def test_without_an_nvidia_driver_or_library_the_real_module_is_unavailable() -> None:
    with pytest.raises(TeeUnavailableError):
        NvmlGpus().cc_state()


def test_fake_uses_only_names_and_layouts_the_real_pynvml_has() -> None:
    pynvml = pytest.importorskip("pynvml")
    used = [name for name in vars(FakeNvml) if name.startswith(("nvml", "NVML"))]
    assert [name for name in used if not hasattr(pynvml, name)] == []
    codes = [name for name in used if name.startswith("NVML_ERROR")]
    assert {name: getattr(pynvml, name) for name in codes} == {
        name: getattr(FakeNvml, name) for name in codes
    }
    for fake, real in (
        (fake_nvml.AttestationReport, "c_nvmlConfComputeGpuAttestationReport_t"),
        (fake_nvml.GpuCertificate, "c_nvmlConfComputeGpuCertificate_t"),
        (fake_nvml.ConfComputeState, "c_nvmlConfComputeSystemState_t"),
    ):
        assert _layout(fake) == _layout(getattr(pynvml, real))


def _layout(struct: type[ctypes.Structure]) -> list[tuple[str, int]]:
    return [(name, ctypes.sizeof(kind)) for name, kind in struct._fields_]
