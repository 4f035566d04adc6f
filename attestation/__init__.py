"""Evidence in, verdict out: Intel DCAP quote parsing, verification and policy.

Verification is pure: the time, the collateral and the trust anchor are passed in.

    from attestation import Collateral, TrustAnchor, verify_quote, Policy
    anchor = TrustAnchor.intel()
    verified = verify_quote(raw, Collateral.from_json(text), now=now, trust_anchor=anchor)
    decision = Policy().evaluate(verified, now=now)
"""

from attestation.collateral import Collateral, QeIdentity, TcbInfo
from attestation.errors import (
    AttestationError,
    BindingError,
    CertificateError,
    CollateralExpiredError,
    CollateralFormatError,
    CollateralSourceError,
    IdentityMismatchError,
    PolicyFormatError,
    QuoteFormatError,
    RevokedError,
    SignatureError,
    TcbError,
    UnsupportedQuoteError,
    VerificationError,
)
from attestation.pcs import INTEL_PCS_URL, CachedCollateralSource, CollateralCache, PcsClient
from attestation.pki import TrustAnchor
from attestation.policy import Policy, PolicyDecision
from attestation.quote import Quote, parse_quote
from attestation.tcb import TcbStatus
from attestation.verify import CHECKS, QuoteVerifier, VerifiedQuote, verify_quote

__all__ = [
    "CHECKS",
    "INTEL_PCS_URL",
    "AttestationError",
    "BindingError",
    "CachedCollateralSource",
    "CertificateError",
    "Collateral",
    "CollateralCache",
    "CollateralExpiredError",
    "CollateralFormatError",
    "CollateralSourceError",
    "IdentityMismatchError",
    "PcsClient",
    "Policy",
    "PolicyDecision",
    "PolicyFormatError",
    "QeIdentity",
    "Quote",
    "QuoteFormatError",
    "QuoteVerifier",
    "RevokedError",
    "SignatureError",
    "TcbError",
    "TcbInfo",
    "TcbStatus",
    "TrustAnchor",
    "UnsupportedQuoteError",
    "VerificationError",
    "VerifiedQuote",
    "parse_quote",
    "verify_quote",
]
