"""The one error hierarchy of the `enclave` package (stable `code` strings, like `attestation`).

EnclaveError
├── TeeUnavailableError   no usable TEE backend here (or the configured one is absent)
├── TeeProtocolError      a TEE interface answered out of protocol (sizes, generation, I/O)
├── SealingError          sealed state cannot be opened (other measurement, tampered, corrupt)
└── EnvelopeError         an encrypted envelope cannot be opened (malformed, tampered, wrong key)
"""

from __future__ import annotations


class EnclaveError(Exception):
    """Base of every error raised by `enclave`."""

    code = "enclave_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class TeeUnavailableError(EnclaveError):
    code = "tee_unavailable"


class TeeProtocolError(EnclaveError):
    code = "tee_protocol_error"


class SealingError(EnclaveError):
    code = "sealing_failed"


class EnvelopeError(EnclaveError, ValueError):
    code = "envelope_invalid"
