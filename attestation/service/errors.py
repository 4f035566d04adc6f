"""The service's errors: part of the package's one hierarchy (`attestation.errors`), each with
its stable `code` and the HTTP status it answers with.

Every error answer has the body `{"error": {"code": ..., "message": ...}}`. Bad input is a 4xx
with a typed code, never a 5xx; 503 means collateral could not be had (upstream down and no
valid collateral cached, or the newest collateral has expired).

    AttestationError
    └── ServiceError
        ├── MalformedRequestError      400  the body is not JSON, or the quote's encoding is bad
        ├── InvalidRequestError        422  the JSON does not fit the request schema
        ├── UnknownPolicyError         404  no policy of that name
        ├── NoSelfAttestationError     404  the service does not run in a TEE
        ├── RequestTooLargeError       413  body, quote or event log over the configured cap
        ├── CollateralRefusedError     503  collateral expired and nothing newer is available
        ├── SelfAttestationError       503  the TEE did not produce the service's own quote
        └── KeyFileError                    the service's key file cannot be used (startup)
"""

from __future__ import annotations

from attestation.errors import (
    AttestationError,
    CollateralFormatError,
    CollateralSourceError,
    EventLogError,
    PolicyFormatError,
    QuoteFormatError,
)

__all__ = [
    "CollateralRefusedError",
    "InvalidRequestError",
    "KeyFileError",
    "MalformedRequestError",
    "NoSelfAttestationError",
    "RequestTooLargeError",
    "SelfAttestationError",
    "ServiceError",
    "UnknownPolicyError",
    "http_status",
]


class ServiceError(AttestationError):
    """An error of the HTTP service; `status` is the HTTP status it answers with."""

    code = "service_error"
    status = 400


class MalformedRequestError(ServiceError, ValueError):
    code = "malformed_request"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidRequestError(ServiceError, ValueError):
    code = "invalid_request"
    status = 422

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UnknownPolicyError(ServiceError, LookupError):
    code = "unknown_policy"
    status = 404


class NoSelfAttestationError(ServiceError):
    code = "no_self_attestation"
    status = 404


class RequestTooLargeError(ServiceError, ValueError):
    code = "request_too_large"
    status = 413


class CollateralRefusedError(ServiceError):
    """Collateral has expired (now >= its earliest nextUpdate) and no newer is available."""

    code = "collateral_expired"
    status = 503


class SelfAttestationError(ServiceError):
    code = "self_attestation_failed"
    status = 503


class KeyFileError(ServiceError):
    code = "key_file_invalid"
    status = 500


_STATUS: tuple[tuple[type[AttestationError], int], ...] = (
    (QuoteFormatError, 400),
    (PolicyFormatError, 422),
    (EventLogError, 422),
    (CollateralSourceError, 503),
    (CollateralFormatError, 503),
)


def http_status(error: AttestationError) -> int:
    """The HTTP status an error answers with (unknown attestation errors: 422, bad input)."""
    if isinstance(error, ServiceError):
        return error.status
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 422
