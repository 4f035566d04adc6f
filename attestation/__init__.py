"""Evidence in, verdict out: Intel DCAP quote parsing, verification and policy.

Verification is pure: the time, the collateral and the trust anchor are passed in.

    from attestation import Collateral, TrustAnchor, verify_quote, Policy
    anchor = TrustAnchor.intel()
    verified = verify_quote(raw, Collateral.from_json(text), now=now, trust_anchor=anchor)
    decision = Policy().evaluate(verified, now=now)
"""

from attestation.binding import check_worker_report_data, worker_report_data
from attestation.ccel import CcelLog, parse_ccel
from attestation.collateral import Collateral, QeIdentity, TcbInfo
from attestation.errors import (
    AttestationError,
    BindingError,
    CertificateError,
    CollateralExpiredError,
    CollateralFormatError,
    CollateralSourceError,
    EventLogError,
    IdentityMismatchError,
    PolicyFormatError,
    QuoteFormatError,
    RevokedError,
    SignatureError,
    TcbError,
    UnsupportedQuoteError,
    VerificationError,
)
from attestation.eventlog import (
    AgentMeasurement,
    RuntimeEvent,
    agent_event,
    agent_events,
    check_rtmrs,
    replay,
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
    "AgentMeasurement",
    "AttestationError",
    "BindingError",
    "CachedCollateralSource",
    "CcelLog",
    "CertificateError",
    "Collateral",
    "CollateralCache",
    "CollateralExpiredError",
    "CollateralFormatError",
    "CollateralSourceError",
    "EventLogError",
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
    "RuntimeEvent",
    "SignatureError",
    "TcbError",
    "TcbInfo",
    "TcbStatus",
    "TrustAnchor",
    "UnsupportedQuoteError",
    "VerificationError",
    "VerifiedQuote",
    "agent_event",
    "agent_events",
    "check_rtmrs",
    "check_worker_report_data",
    "parse_ccel",
    "parse_quote",
    "replay",
    "verify_quote",
    "worker_report_data",
]
