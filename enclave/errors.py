"""The one error hierarchy of the `enclave` package (stable `code` strings, like `attestation`).

EnclaveError
├── TeeUnavailableError   no usable TEE backend here (or the configured one is absent)
├── TeeProtocolError      a TEE interface answered out of protocol (sizes, generation, I/O)
├── SealingError          sealed state cannot be opened (other measurement, tampered, corrupt)
├── EnvelopeError         an encrypted envelope cannot be opened (malformed, tampered, wrong key)
├── RegistrationError     the attestation service or the registry refused this worker
└── WorkerConfigError     the worker's configuration does not fit the chain (no bundle for an agent)
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


class RegistrationError(EnclaveError):
    code = "registration_failed"


class WorkerConfigError(EnclaveError, ValueError):
    code = "worker_misconfigured"
