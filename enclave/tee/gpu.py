"""GPU evidence as a worker collects it, whatever the source: `enclave.tee.nvml.NvmlGpus` (real
NVIDIA GPUs through NVML) or `enclave.tee.sim_gpu.SimulatedGpu`. Each GPU gives its SPDM
attestation report over a 32-byte nonce, its certificate chain and the CC state the driver
reports; `bundle_gpu` turns that into the form an attestation bundle carries
(`attestation.evidence`), for the gateway's attestation and the worker's registration alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from attestation.bundle import BundleGpu, GpuCcState

__all__ = ["GPU_NONCE_SIZE", "CcState", "GpuEvidence", "GpuSource", "bundle_gpu"]

GPU_NONCE_SIZE = 32


@dataclass(frozen=True, slots=True)
class CcState:
    """The system's confidential-computing state as NVML reports it. `enabled`: CC mode on;
    `devtools`: CC with developer tools (debuggable: a policy should refuse it in production);
    `environment`: "prod", "sim" (simulated CC) or "unavailable"."""

    enabled: bool
    devtools: bool
    environment: str


@dataclass(frozen=True, slots=True)
class GpuEvidence:
    """What one GPU contributes to an attestation bundle (verify with
    `attestation.gpu.verify_gpu_report(report, cert_chain, nonce=...)`)."""

    index: int
    uuid: str
    arch: str
    report: bytes
    cert_chain: bytes
    cc_state: CcState


class GpuSource(Protocol):
    """Where GPU evidence comes from: `enclave.tee.nvml.NvmlGpus` (real GPUs) or
    `enclave.tee.sim_gpu.SimulatedGpu`. `collect` answers a 32-byte SPDM nonce, one item per GPU."""

    def collect(self, nonce: bytes) -> tuple[GpuEvidence, ...]: ...


def bundle_gpu(evidence: GpuEvidence) -> BundleGpu:
    """One GPU's evidence as an attestation bundle carries it (`attestation.evidence`)."""
    cc = evidence.cc_state
    return BundleGpu(
        report=evidence.report,
        cert_chain=evidence.cert_chain,
        cc_state=GpuCcState(cc.enabled, cc.devtools, cc.environment),
        uuid=evidence.uuid,
        arch=evidence.arch,
    )
