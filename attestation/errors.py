"""The one error hierarchy of the `attestation` package.

Every error has a stable `code` (used by the CLI's `--json` output and by HTTP 4xx bodies) and a
message a user can act on. Errors about bad *input* also inherit `ValueError`, so callers that
only know the built-ins still catch them.

    AttestationError
    ├── QuoteFormatError          the quote bytes are malformed (names the field and offset)
    ├── CollateralFormatError     the collateral is malformed
    ├── PolicyFormatError         a policy file is malformed
    ├── CollateralSourceError     PCS / PCCS / cache could not provide collateral
    ├── EventLogError             an event log is malformed or does not replay to the RTMRs
    ├── ComposeFormatError        an app-compose document dstack would refuse
    ├── BundleFormatError         an attestation bundle (quote + event log + GPUs) is malformed
    └── VerificationError         a DCAP check failed (names the check)
        ├── UnsupportedQuoteError     version / TEE / key type / vendor / certification data
        ├── CertificateError          a certificate chain does not validate at `now`
        ├── RevokedError              a certificate is listed in a CRL
        ├── CollateralExpiredError    a collateral time window does not contain `now`
        ├── SignatureError            an ECDSA signature does not verify
        ├── BindingError              QE report data does not bind the attestation key
        ├── IdentityMismatchError     the QE does not match the QE identity
        └── TcbError                  no TCB level matches, wrong FMSPC / TEE type, revoked TCB
"""

from __future__ import annotations


class AttestationError(Exception):
    """Base of every error raised by `attestation`."""

    code = "attestation_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class QuoteFormatError(AttestationError, ValueError):
    """The quote is not a well-formed DCAP quote. `field` and `offset` say where."""

    code = "malformed_quote"

    def __init__(self, field: str, offset: int, problem: str) -> None:
        super().__init__(f"{field} at offset {offset}: {problem}")
        self.field = field
        self.offset = offset
        self.problem = problem


class CollateralFormatError(AttestationError, ValueError):
    """Collateral (CRLs, TCB info, QE identity, chains) cannot be parsed."""

    code = "malformed_collateral"


class PolicyFormatError(AttestationError, ValueError):
    """A policy document is not valid."""

    code = "malformed_policy"


class CollateralSourceError(AttestationError):
    """Collateral could not be obtained from PCS, a PCCS or the cache."""

    code = "collateral_unavailable"


class EventLogError(AttestationError, ValueError):
    """An event log cannot be parsed, or does not replay to the measured registers."""

    code = "event_log_mismatch"


class ComposeFormatError(AttestationError, ValueError):
    """An app-compose document dstack would refuse, or one that has no canonical form."""

    code = "malformed_app_compose"


class BundleFormatError(AttestationError, ValueError):
    """A bundle (or one GPU's part of it) is not in the JSON layout of `attestation.bundle`."""

    code = "malformed_bundle"


class VerificationError(AttestationError):
    """A DCAP verification check failed. `check` names it (see `attestation.verify.Check`)."""

    code = "verification_failed"

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check
        self.reason = message


class UnsupportedQuoteError(VerificationError):
    code = "unsupported_quote"


class CertificateError(VerificationError):
    code = "certificate_invalid"


class RevokedError(VerificationError):
    code = "certificate_revoked"


class CollateralExpiredError(VerificationError):
    code = "collateral_out_of_window"


class SignatureError(VerificationError):
    code = "signature_invalid"


class BindingError(VerificationError):
    code = "qe_binding_mismatch"


class IdentityMismatchError(VerificationError):
    code = "qe_identity_mismatch"


class TcbError(VerificationError):
    code = "tcb_mismatch"
