"""NVIDIA GPU attestation (Hopper): SPDM measurement reports, the certificate chain to the pinned
NVIDIA device root, FWID, nonce, and optional comparison with NVIDIA's RIMs. Pure: the clock,
the trust anchor and the RIMs are passed in.

    from attestation.gpu import gpu_nonce, nvidia_device_root, verify_gpu_report
    verified = verify_gpu_report(report, chain_pem, nonce=gpu_nonce(request_nonce), now=now,
                                 trust_anchor=nvidia_device_root())
"""

from attestation.gpu.errors import (
    GpuCertificateError,
    GpuError,
    GpuFwidError,
    GpuMeasurementError,
    GpuNonceError,
    GpuReportFormatError,
    GpuSignatureError,
    GpuUnsupportedError,
    GpuVerificationError,
    RimFormatError,
)
from attestation.gpu.rim import Rim, RimComparison, RimSet, parse_rim
from attestation.gpu.spdm import GpuReport, MeasurementBlock, OpaqueFieldId, parse_gpu_report
from attestation.gpu.verify import (
    GPU_CHECKS,
    NVIDIA_DEVICE_ROOT_SHA256,
    VerifiedGpu,
    gpu_nonce,
    nvidia_device_root,
    verify_gpu_report,
)

__all__ = [
    "GPU_CHECKS",
    "NVIDIA_DEVICE_ROOT_SHA256",
    "GpuCertificateError",
    "GpuError",
    "GpuFwidError",
    "GpuMeasurementError",
    "GpuNonceError",
    "GpuReport",
    "GpuReportFormatError",
    "GpuSignatureError",
    "GpuUnsupportedError",
    "GpuVerificationError",
    "MeasurementBlock",
    "OpaqueFieldId",
    "Rim",
    "RimComparison",
    "RimFormatError",
    "RimSet",
    "VerifiedGpu",
    "gpu_nonce",
    "nvidia_device_root",
    "parse_gpu_report",
    "parse_rim",
    "verify_gpu_report",
]
