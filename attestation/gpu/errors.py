"""The GPU branch of the `attestation` error hierarchy (stable `code` strings, like the rest).

    AttestationError
    └── GpuError
        ├── GpuReportFormatError      the SPDM report bytes are malformed (names field and offset)
        ├── RimFormatError            a RIM file is not a usable NVIDIA SWID tag
        └── GpuVerificationError      a GPU check failed (names the check, see `GPU_CHECKS`)
            ├── GpuUnsupportedError       SPDM version, measurement layout, GPU model
            ├── GpuCertificateError       the chain is too short or does not reach the anchor
            ├── GpuFwidError              no FWID in the leaf, or it differs from the report's
            ├── GpuSignatureError         the report is not signed by the leaf key
            ├── GpuNonceError             the report answers another nonce
            └── GpuMeasurementError       no RIM for this driver/VBIOS, or measurements differ

Errors about bad input also inherit `ValueError`, as in `attestation.errors`.
"""

from __future__ import annotations

from attestation.errors import AttestationError

__all__ = [
    "GpuCertificateError",
    "GpuError",
    "GpuFwidError",
    "GpuMeasurementError",
    "GpuNonceError",
    "GpuReportFormatError",
    "GpuSignatureError",
    "GpuUnsupportedError",
    "GpuVerificationError",
    "RimFormatError",
]


class GpuError(AttestationError):
    """Base of every GPU attestation error."""

    code = "gpu_error"


class GpuReportFormatError(GpuError, ValueError):
    """The report is not a well-formed SPDM GET_MEASUREMENTS request + response.
    `field` and `offset` (from the start of the whole report) say where."""

    code = "malformed_gpu_report"

    def __init__(self, field: str, offset: int, problem: str) -> None:
        super().__init__(f"{field} at offset {offset}: {problem}")
        self.field = field
        self.offset = offset
        self.problem = problem


class RimFormatError(GpuError, ValueError):
    """A reference integrity manifest cannot be read or parsed."""

    code = "malformed_rim"


class GpuVerificationError(GpuError):
    """A GPU verification check failed; `check` names it (see `attestation.gpu.GPU_CHECKS`)."""

    code = "gpu_verification_failed"

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.reason = message


class GpuUnsupportedError(GpuVerificationError):
    code = "gpu_unsupported"


class GpuCertificateError(GpuVerificationError):
    code = "gpu_certificate_invalid"


class GpuFwidError(GpuVerificationError):
    code = "gpu_fwid_mismatch"


class GpuSignatureError(GpuVerificationError):
    code = "gpu_signature_invalid"


class GpuNonceError(GpuVerificationError):
    code = "gpu_nonce_mismatch"


class GpuMeasurementError(GpuVerificationError):
    code = "gpu_measurement_mismatch"
