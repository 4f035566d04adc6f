"""Intel DCAP quote verification: every check, in a fixed order, pure (no clock, no network).

`verify_quote(quote, collateral, now=..., trust_anchor=...)` runs the whole check list and
returns a `VerifiedQuote` or raises a `VerificationError` naming the failed check (a
`QuoteFormatError` / `CollateralFormatError` when the input cannot be parsed at all).

`QuoteVerifier` does the same but remembers, per collateral content hash, the work that only
depends on the collateral (CRLs, TCB info and QE identity chains and signatures), per PCK chain
the chain validation and its SGX extensions, and per platform the QE report signature. Each
cached result is kept with the time window in which it holds, so a warm verification at any
`now` gives exactly the cold result, at the price of one ECDSA check and a parse.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestation import tcb
from attestation.collateral import (
    Collateral,
    QeIdentity,
    TcbInfo,
)
from attestation.collateral_trust import CheckedCollateral, check_collateral
from attestation.ecdsa import verify_raw_ecdsa
from attestation.errors import (
    BindingError,
    CertificateError,
    IdentityMismatchError,
    SignatureError,
    TcbError,
    UnsupportedQuoteError,
)
from attestation.pck import PckExtensions, parse_pck_extensions, pck_ca_type
from attestation.pki import (
    ChainValidator,
    TrustAnchor,
    Window,
    load_pem_chain,
    malformed_certificates,
)
from attestation.quote import (
    INTEL_QE_VENDOR_ID,
    AttestationKeyType,
    CertificationDataType,
    QeReportCertificationData,
    Quote,
    TeeType,
    parse_quote,
)
from attestation.report import BodyType, SgxReportBody, TdReport10
from attestation.verified import CHECKS, CollateralSummary, VerifiedQuote, checks_for

__all__ = ["CHECKS", "CollateralSummary", "QuoteVerifier", "VerifiedQuote", "verify_quote"]

_CACHE_SIZE = 256


def verify_quote(
    quote: bytes, collateral: Collateral, *, now: datetime, trust_anchor: TrustAnchor
) -> VerifiedQuote:
    """Verify a DCAP quote against collateral at `now`, to `trust_anchor`. No caching."""
    return QuoteVerifier(trust_anchor).verify(quote, collateral, now=now)


K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A small thread-safe LRU map: cache keys are derived from attacker-supplied input."""

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


@dataclass(frozen=True, slots=True)
class _CheckedPck:
    extensions: PckExtensions
    public_key: ec.EllipticCurvePublicKey
    window: Window


class QuoteVerifier:
    """Verifies quotes to one trust anchor, caching collateral and PCK chain work."""

    def __init__(self, trust_anchor: TrustAnchor, *, cache_size: int = _CACHE_SIZE) -> None:
        self.trust_anchor = trust_anchor
        self._collateral: _Lru[bytes, CheckedCollateral] = _Lru(cache_size)
        self._pck: _Lru[tuple[bytes, bytes], _CheckedPck] = _Lru(cache_size)
        self._qe_reports: _Lru[tuple[bytes, bytes, bytes], bool] = _Lru(cache_size)

    def verify(self, quote: bytes, collateral: Collateral, *, now: datetime) -> VerifiedQuote:
        if now.tzinfo is None:
            raise ValueError("now must be a timezone-aware datetime")
        t = now.timestamp()
        parsed = parse_quote(quote)
        qe_block = _check_header(parsed)
        checked, validator = self._checked_collateral(collateral, now, t)
        _check_collateral_types(parsed, checked.tcb_info, checked.qe_identity)
        pck = self._checked_pck(qe_block, collateral, checked, validator, now, t)
        self._check_qe_report(qe_block, pck)
        _check_qe_binding(qe_block, parsed.signature_data.attestation_key)
        qe_identity = checked.qe_identity
        _check_qe_identity(qe_block.qe_report, qe_identity)
        _check_quote_signature(parsed)
        return _tcb_verdict(parsed, quote, qe_block, pck.extensions, checked, self.trust_anchor)

    def _checked_collateral(
        self, collateral: Collateral, now: datetime, t: float
    ) -> tuple[CheckedCollateral, ChainValidator | None]:
        """The checked collateral, and the chain validator built for it when it was not cached."""
        cached = self._collateral.get(collateral.digest)
        if cached is not None and t in cached.window:
            return cached, None
        checked, validator = check_collateral(collateral, now, self.trust_anchor)
        self._collateral.put(collateral.digest, checked)
        return checked, validator

    def _checked_pck(
        self,
        qe_block: QeReportCertificationData,
        collateral: Collateral,
        checked: CheckedCollateral,
        validator: ChainValidator | None,
        now: datetime,
        t: float,
    ) -> _CheckedPck:
        chain_pem: str | bytes = qe_block.certification_data.data
        if collateral.pck_certificate_chain is not None:
            chain_pem = collateral.pck_certificate_chain
        key = (collateral.digest, hashlib.sha256(_as_bytes(chain_pem)).digest())
        cached = self._pck.get(key)
        if cached is not None and t in cached.window:
            return cached
        certs = load_pem_chain(chain_pem, "pck.chain")
        if validator is None:
            validator = ChainValidator(self.trust_anchor, *checked.crls, now)
        window = validator.validate(certs, "pck.chain", path_length=3)
        with malformed_certificates("pck.chain"):
            pck_ca_type(certs[0])  # a PCK Platform or Processor CA issued it: a PCK certificate
        leaf_key = certs[0].public_key()
        if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
            raise CertificateError("pck.chain", "PCK certificate key is not an EC key")
        with malformed_certificates("pck.extensions"):
            extensions = parse_pck_extensions(certs[0])
        result = _CheckedPck(extensions, leaf_key, window & checked.window)
        self._pck.put(key, result)
        return result

    def _check_qe_report(self, qe_block: QeReportCertificationData, pck: _CheckedPck) -> None:
        key = (
            pck.public_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            ),
            qe_block.qe_report_raw,
            qe_block.qe_report_signature,
        )
        if self._qe_reports.get(key):
            return
        verify_raw_ecdsa(
            pck.public_key,
            qe_block.qe_report_signature,
            qe_block.qe_report_raw,
            "qe_report.signature",
            "QE report signature does not verify under the PCK key",
        )
        self._qe_reports.put(key, True)


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _check_header(quote: Quote) -> QeReportCertificationData:
    header = quote.header
    check = "quote.header"
    if header.attestation_key_type != AttestationKeyType.ECDSA_P256:
        raise UnsupportedQuoteError(
            check,
            f"attestation key type {header.attestation_key_type} (only ECDSA-P256 is supported)",
        )
    if header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise UnsupportedQuoteError(check, f"unknown QE vendor ID {header.qe_vendor_id.hex()}")
    expected_tee = TeeType.SGX if quote.body_type is BodyType.SGX else TeeType.TDX
    if header.tee_type != expected_tee:
        raise UnsupportedQuoteError(
            check,
            f"header TEE type {header.tee_type:#x} does not match a {quote.body_type.name} body",
        )
    sig = quote.signature_data
    if header.version >= 4 and sig.certification_data.type != CertificationDataType.QE_REPORT:
        raise UnsupportedQuoteError(
            check,
            f"certification data type {sig.certification_data.type} where a v{header.version} "
            "quote needs type 6 (QE report certification data)",
        )
    qe_block = sig.qe_report_certification
    assert qe_block is not None  # v3 always has one; v4/v5 checked just above
    if qe_block.certification_data.type != CertificationDataType.PCK_CERT_CHAIN:
        raise UnsupportedQuoteError(
            check,
            f"certification data type {qe_block.certification_data.type}: only an embedded PCK "
            "certificate chain (type 5) is supported",
        )
    return qe_block


def _check_collateral_types(quote: Quote, tcb_info: TcbInfo, qe_identity: QeIdentity) -> None:
    if quote.tee == "tdx":
        tcb_ok = tcb_info.id == "TDX" and tcb_info.version >= 3
        qe_ok = qe_identity.id == "TD_QE" and qe_identity.version in (2, 3)
    else:
        tcb_ok = tcb_info.id == "SGX" and tcb_info.version in (2, 3)
        qe_ok = qe_identity.id == "QE" and qe_identity.version == 2
    if not tcb_ok:
        raise TcbError(
            "tcb_info.type",
            f"{quote.tee.upper()} quote with TCB info id {tcb_info.id!r} v{tcb_info.version}",
        )
    if not qe_ok:
        raise IdentityMismatchError(
            "qe_identity.type",
            f"{quote.tee.upper()} quote with QE identity id {qe_identity.id!r} "
            f"v{qe_identity.version}",
        )


def _check_qe_binding(qe_block: QeReportCertificationData, attestation_key: bytes) -> None:
    expected = hashlib.sha256(attestation_key + qe_block.qe_auth_data).digest()
    report_data = qe_block.qe_report.report_data
    if report_data[:32] != expected or any(report_data[32:]):
        raise BindingError(
            "qe_report.binding",
            "QE report data is not SHA-256(attestation key || QE auth data) || 32 zero bytes",
        )


def _check_qe_identity(qe_report: SgxReportBody, identity: QeIdentity) -> None:
    check = "qe_identity.match"
    if qe_report.mr_signer != identity.mrsigner:
        raise IdentityMismatchError(
            check, f"QE MRSIGNER {qe_report.mr_signer.hex()} != {identity.mrsigner.hex()}"
        )
    if qe_report.isv_prod_id != identity.isvprodid:
        raise IdentityMismatchError(
            check, f"QE ISVPRODID {qe_report.isv_prod_id} != {identity.isvprodid}"
        )
    mask = identity.miscselect_mask
    if qe_report.misc_select & mask != identity.miscselect & mask:
        raise IdentityMismatchError(check, "QE MISCSELECT does not match under the mask")
    attr_mask = int.from_bytes(identity.attributes_mask, "little")
    have = int.from_bytes(qe_report.attributes.raw, "little")
    want = int.from_bytes(identity.attributes, "little")
    if have & attr_mask != want & attr_mask:
        raise IdentityMismatchError(check, "QE ATTRIBUTES do not match under the mask")
    if qe_report.attributes.debug:
        raise IdentityMismatchError(check, "the QE runs in debug mode")


def _check_quote_signature(quote: Quote) -> None:
    sig = quote.signature_data
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b"\x04" + sig.attestation_key
        )
    except ValueError:
        raise SignatureError("quote.signature", "attestation key is not a P-256 point") from None
    verify_raw_ecdsa(
        key,
        sig.signature,
        quote.signed_data,
        "quote.signature",
        "quote signature does not verify under the attestation key",
    )


def _tcb_verdict(
    quote: Quote,
    raw: bytes,
    qe_block: QeReportCertificationData,
    pck: PckExtensions,
    checked: CheckedCollateral,
    anchor: TrustAnchor,
) -> VerifiedQuote:
    tcb_info = checked.tcb_info
    if pck.fmspc != tcb_info.fmspc or pck.pce_id != tcb_info.pce_id:
        raise TcbError(
            "tcb.fmspc",
            f"Fmspc mismatch: PCK FMSPC {pck.fmspc.hex()} / PCE-ID {pck.pce_id.hex()}, TCB info "
            f"{tcb_info.fmspc.hex()} / {tcb_info.pce_id.hex()}",
        )
    td_report = quote.report if isinstance(quote.report, TdReport10) else None
    platform = tcb.match_platform(tcb_info, pck, td_report)
    module = tcb.match_tdx_module(tcb_info, td_report) if td_report is not None else None
    qe = tcb.match_isvsvn(
        checked.qe_identity.tcb_levels, qe_block.qe_report.isv_svn, "tcb.qe", "QE"
    )
    merged = platform if module is None else tcb.merge(platform, module)
    merged = tcb.merge(merged, qe)
    if merged.status is tcb.TcbStatus.REVOKED:
        raise TcbError("tcb.status", "the platform's TCB is Revoked")
    return VerifiedQuote(
        quote=quote,
        quote_sha256=hashlib.sha256(raw[: quote.size]).hexdigest(),
        tcb_status=merged.status,
        advisory_ids=merged.advisory_ids,
        platform_tcb=platform,
        tdx_module_tcb=module,
        qe_tcb=qe,
        pck=pck,
        collateral=checked.summary,
        trust_anchor=anchor.label,
        trust_anchor_sha256=anchor.fingerprint,
        simulated=not anchor.is_intel,
        checks=checks_for(quote.tee),
    )
