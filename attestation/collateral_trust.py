"""Is this collateral genuine and current? Its CRLs, TCB info and QE identity, checked against
the pinned root at `now`.

The result depends on the collateral, the trust anchor and `now` only, so `QuoteVerifier` keeps
it (with the window of time in which it holds) per collateral content hash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestation.collateral import (
    Collateral,
    QeIdentity,
    TcbInfo,
    parse_qe_identity,
    parse_tcb_info,
)
from attestation.ecdsa import verify_raw_ecdsa
from attestation.errors import CertificateError, CollateralExpiredError
from attestation.pki import (
    ChainValidator,
    Crl,
    TrustAnchor,
    Window,
    load_crl,
    load_pem_chain,
    malformed_certificates,
)
from attestation.verified import CollateralSummary

__all__ = ["TCB_SIGNING_CN", "CheckedCollateral", "check_collateral"]

TCB_SIGNING_CN = "Intel SGX TCB Signing"


@dataclass(frozen=True, slots=True)
class CheckedCollateral:
    tcb_info: TcbInfo
    qe_identity: QeIdentity
    crls: tuple[Crl, Crl]
    summary: CollateralSummary
    window: Window


def check_collateral(
    collateral: Collateral, now: datetime, anchor: TrustAnchor
) -> tuple[CheckedCollateral, ChainValidator]:
    """Check the collateral; also return the chain validator built for it (its CRLs, `now`),
    which the caller may reuse for the quote's PCK chain."""
    root_crl = load_crl(collateral.root_ca_crl, "root_ca_crl")
    pck_crl = load_crl(collateral.pck_crl, "pck_crl")
    validator = ChainValidator(anchor, root_crl, pck_crl, now)
    signers = _Signers(validator)
    tcb_info = parse_tcb_info(collateral.tcb_info)
    window = _check_signed_body(
        "tcb_info",
        "TCBInfo",
        (tcb_info.issue_date, tcb_info.next_update),
        now,
        lambda: signers.get(collateral.tcb_info_issuer_chain, "tcb_info.chain"),
        collateral.tcb_info,
        collateral.tcb_info_signature,
    )
    qe_identity = parse_qe_identity(collateral.qe_identity)
    window &= _check_signed_body(
        "qe_identity",
        "QE identity",
        (qe_identity.issue_date, qe_identity.next_update),
        now,
        lambda: signers.get(collateral.qe_identity_issuer_chain, "qe_identity.chain"),
        collateral.qe_identity,
        collateral.qe_identity_signature,
    )
    summary = CollateralSummary(
        digest=collateral.digest.hex(),
        tcb_evaluation_data_number=tcb_info.tcb_evaluation_data_number,
        tcb_info_issue_date=tcb_info.issue_date,
        tcb_info_next_update=tcb_info.next_update,
        qe_identity_issue_date=qe_identity.issue_date,
        qe_identity_next_update=qe_identity.next_update,
        root_ca_crl_next_update=root_crl.next_update,
        pck_crl_next_update=pck_crl.next_update,
    )
    checked = CheckedCollateral(tcb_info, qe_identity, (root_crl, pck_crl), summary, window)
    return checked, validator


class _Signers:
    """Validated collateral signing chains by PEM text: TCB info and QE identity are usually
    signed under the same chain, which is then validated once."""

    def __init__(self, validator: ChainValidator) -> None:
        self._validator = validator
        self._seen: dict[str, tuple[ec.EllipticCurvePublicKey, Window]] = {}

    def get(self, pem: str, check: str) -> tuple[ec.EllipticCurvePublicKey, Window]:
        if pem not in self._seen:
            certs = load_pem_chain(pem, check)
            window = self._validator.validate(certs, check, path_length=2)
            with malformed_certificates(check):
                _require_common_name(certs[0], TCB_SIGNING_CN, check)
            key = certs[0].public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise CertificateError(check, "collateral signing key is not an EC key")
            self._seen[pem] = (key, window)
        return self._seen[pem]


def _require_common_name(cert: x509.Certificate, expected: str, check: str) -> None:
    """Intel's QVL pins the role of each certificate by its subject: a PCK key must not sign
    TCB info, nor a TCB signing key pose as a PCK certificate."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [expected]:
        raise CertificateError(
            check, f"{cert.subject.rfc4514_string()} is not an {expected!r} certificate"
        )


def _check_signed_body(
    check: str,
    name: str,
    validity: tuple[datetime, datetime],
    now: datetime,
    signer: Callable[[], tuple[ec.EllipticCurvePublicKey, Window]],
    body: str,
    signature: bytes,
) -> Window:
    """Window, then issuer chain, then signature of a signed JSON body (TCB info, QE identity)."""
    issue, next_update = validity
    if now < issue:
        raise CollateralExpiredError(
            f"{check}.window", f"{name} issue date is in the future ({issue.isoformat()})"
        )
    if now > next_update:
        raise CollateralExpiredError(
            f"{check}.window", f"{name} expired (nextUpdate {next_update.isoformat()})"
        )
    key, window = signer()
    verify_raw_ecdsa(
        key,
        signature,
        body.encode(),
        f"{check}.signature",
        f"{name} signature does not verify over the received bytes",
    )
    return window & Window(issue.timestamp(), next_update.timestamp())
