"""The attestation service: DCAP evidence over HTTP in, explained verdicts, ES256 tokens and
EIP-712 verdicts out (FastAPI). Build it with `create_app(settings, signing=keys)`; run it with
`serve(settings, ...)` or `python -m attestation.service`."""

from attestation.service.app import create_app, get_service
from attestation.service.collateral import CollateralProvider
from attestation.service.keys import SelfEvidence, ServiceKeys, backend_attestor
from attestation.service.settings import ServiceSettings
from attestation.service.upstreams import (
    CallableUpstream,
    OfflineUpstream,
    PcsUpstream,
    TrustDomain,
    simulator_domain,
)

__all__ = [
    "CallableUpstream",
    "CollateralProvider",
    "OfflineUpstream",
    "PcsUpstream",
    "SelfEvidence",
    "ServiceKeys",
    "ServiceSettings",
    "TrustDomain",
    "backend_attestor",
    "create_app",
    "get_service",
    "simulator_domain",
]
