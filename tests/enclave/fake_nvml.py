"""A stand-in for the `pynvml` module, answering with responses recorded from a real H100 in CC
mode (the trustee sample: its report over nonce 931d...dfcb and its certificate chain).

Its structures have pynvml's field names and buffer sizes (ctypes arrays of 0x2000 report
bytes, 0x1400 chain bytes), so `NvmlGpus` reads them exactly as it reads the real ones.
`test_nvml.py` checks that every name used here exists in the real `pynvml` where installed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import Any

from tests.attestation.gpu.samples import chain, report

REPORT_SIZE, CERT_CHAIN_SIZE, ATTESTATION_CERT_CHAIN_SIZE, NONCE_SIZE = 0x2000, 0x1000, 0x1400, 32


class AttestationReport(ctypes.Structure):
    _fields_ = [
        ("isCecAttestationReportPresent", ctypes.c_uint),
        ("attestationReportSize", ctypes.c_uint),
        ("cecAttestationReportSize", ctypes.c_uint),
        ("nonce", ctypes.c_uint8 * NONCE_SIZE),
        ("attestationReport", ctypes.c_uint8 * REPORT_SIZE),
        ("cecAttestationReport", ctypes.c_uint8 * 0x1000),
    ]


class GpuCertificate(ctypes.Structure):
    _fields_ = [
        ("certChainSize", ctypes.c_uint),
        ("attestationCertChainSize", ctypes.c_uint),
        ("certChain", ctypes.c_uint8 * CERT_CHAIN_SIZE),
        ("attestationCertChain", ctypes.c_uint8 * ATTESTATION_CERT_CHAIN_SIZE),
    ]


class ConfComputeState(ctypes.Structure):
    _fields_ = [
        ("environment", ctypes.c_uint),
        ("ccFeature", ctypes.c_uint),
        ("devToolsMode", ctypes.c_uint),
    ]


class FakeNvml:
    """`cc_feature`, `devtools`, `environment`: what nvmlSystemGetConfComputeState says;
    `gpus`: how many GPUs (each answers with the recorded report); `fail`: function name ->
    NVML error code it raises; `report_size`: overrides the reported size."""

    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_ERROR_GPU_IS_LOST = 15
    NVML_ERROR_UNKNOWN = 999

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    def __init__(
        self,
        *,
        cc_feature: int = 1,
        devtools: int = 0,
        environment: int = 2,
        gpus: int = 1,
        fail: Mapping[str, int] | None = None,
        report_size: int | None = None,
    ) -> None:
        self.state = ConfComputeState(environment, cc_feature, devtools)
        self.gpus = gpus
        self.fail = dict(fail or {})
        self.report_size = report_size
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.NVMLError(self.fail[name])

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names from here on
        self._record("nvmlInit")

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._record("nvmlShutdown")

    def nvmlSystemGetConfComputeState(self) -> ConfComputeState:  # noqa: N802
        self._record("nvmlSystemGetConfComputeState")
        return self.state

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._record("nvmlDeviceGetCount")
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:  # noqa: N802
        self._record("nvmlDeviceGetHandleByIndex", index)
        return f"handle-{index}"

    def nvmlDeviceGetUUID(self, handle: str) -> bytes:  # noqa: N802
        self._record("nvmlDeviceGetUUID", handle)
        return b"GPU-11112222-3333-4444-5555-" + handle.encode()

    def nvmlDeviceGetArchitecture(self, handle: str) -> int:  # noqa: N802
        self._record("nvmlDeviceGetArchitecture", handle)
        return 9  # NVML_DEVICE_ARCH_HOPPER

    def nvmlDeviceGetConfComputeGpuAttestationReport(  # noqa: N802
        self, handle: str, nonce: bytes
    ) -> AttestationReport:
        self._record("nvmlDeviceGetConfComputeGpuAttestationReport", handle, nonce)
        recorded = report()
        answer = AttestationReport()
        answer.nonce[:] = list(nonce)
        answer.attestationReportSize = (
            len(recorded) if self.report_size is None else self.report_size
        )
        answer.attestationReport[: len(recorded)] = list(recorded)
        return answer

    def nvmlDeviceGetConfComputeGpuCertificate(self, handle: str) -> GpuCertificate:  # noqa: N802
        self._record("nvmlDeviceGetConfComputeGpuCertificate", handle)
        pem = chain(1)
        answer = GpuCertificate()
        answer.attestationCertChainSize = len(pem)
        answer.attestationCertChain[: len(pem)] = list(pem)
        return answer
