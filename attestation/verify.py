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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from attestation import tcb
from attestation.collateral import (
    Collateral,
    QeIdentity,
    TcbInfo,
    parse_qe_identity,
    parse_tcb_info,
)
from attestation.errors import (
    BindingError,
    CertificateError,
    CollateralExpiredError,
    IdentityMismatchError,
    SignatureError,
    TcbError,
    UnsupportedQuoteError,
)
from attestation.pck import PckExtensions, parse_pck_extensions, pck_ca_type
from attestation.pki import (
    ChainValidator,
    Crl,
    TrustAnchor,
    Window,
    load_crl,
    load_pem_chain,
    malformed_certificates,
)
from attestation.quote import (
    INTEL_QE_VENDOR_ID,
    AttestationKeyType,
    BodyType,
    CertificationDataType,
    QeReportCertificationData,
    Quote,
    SgxReportBody,
    TdReport10,
    TdReport15,
    TeeType,
    parse_quote,
)

__all__ = [
    "CHECKS",
    "CollateralSummary",
    "QuoteVerifier",
    "VerifiedQuote",
    "checks_for",
    "verify_quote",
]

CHECKS: tuple[tuple[str, str], ...] = (
    ("quote.header", "version, TEE type, ECDSA-P256 attestation key, Intel QE vendor ID"),
    ("collateral.crls", "root CA CRL and PCK CRL inside their validity windows"),
    ("tcb_info.window", "TCB info issueDate <= now <= nextUpdate"),
    ("tcb_info.chain", "TCB signing certificate chains to the pinned root, not revoked"),
    ("tcb_info.signature", "TCB info signature over the received bytes"),
    ("qe_identity.window", "QE identity issueDate <= now <= nextUpdate"),
    ("qe_identity.chain", "QE identity signing certificate chains to the pinned root"),
    ("qe_identity.signature", "QE identity signature over the received bytes"),
    ("tcb_info.type", "TCB info id and version fit the quote's TEE"),
    ("qe_identity.type", "QE identity id and version fit the quote's TEE"),
    ("pck.chain", "PCK certificate -> PCK CA -> pinned root, none revoked"),
    ("pck.extensions", "Intel SGX extensions of the PCK certificate"),
    ("qe_report.signature", "QE report signed by the PCK key"),
    ("qe_report.binding", "QE report data = SHA-256(attestation key || QE auth data)"),
    ("qe_identity.match", "QE MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES match QE identity"),
    ("quote.signature", "quote header and body signed by the attestation key"),
    ("tcb.fmspc", "PCK FMSPC and PCE-ID are the TCB info's"),
    ("tcb.platform", "platform TCB level (SGX components, PCESVN, TDX TEE_TCB_SVN)"),
    ("tcb.tdx_module", "TDX module signer, attributes and TCB level"),
    ("tcb.qe", "QE TCB level from its ISVSVN"),
    ("tcb.status", "merged TCB status is not Revoked"),
)
_ECDSA = ec.ECDSA(hashes.SHA256())
TCB_SIGNING_CN = "Intel SGX TCB Signing"
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class CollateralSummary:
    """Which collateral a verdict used: enough to judge its freshness and reproduce it."""

    digest: str
    tcb_evaluation_data_number: int
    tcb_info_issue_date: datetime
    tcb_info_next_update: datetime
    qe_identity_issue_date: datetime
    qe_identity_next_update: datetime
    root_ca_crl_next_update: datetime | None
    pck_crl_next_update: datetime | None

    @property
    def oldest_issue_date(self) -> datetime:
        return min(self.tcb_info_issue_date, self.qe_identity_issue_date)


@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    """A quote whose every DCAP check passed. `tcb_status` may still be one a policy rejects."""

    quote: Quote
    quote_sha256: str
    tcb_status: tcb.TcbStatus
    advisory_ids: tuple[str, ...]
    platform_tcb: tcb.TcbMatch
    tdx_module_tcb: tcb.TcbMatch | None
    qe_tcb: tcb.TcbMatch
    pck: PckExtensions
    collateral: CollateralSummary
    trust_anchor: str
    trust_anchor_sha256: str
    simulated: bool
    checks: tuple[str, ...]

    @property
    def tee(self) -> str:
        return self.quote.tee

    @property
    def fmspc(self) -> str:
        return self.pck.fmspc.hex().upper()

    @property
    def measurements(self) -> dict[str, str]:
        return report_measurements(self.quote.report)


def report_measurements(report: SgxReportBody | TdReport10) -> dict[str, str]:
    """The identity fields of a report body, hex encoded, named as in Intel's specifications."""
    if isinstance(report, SgxReportBody):
        return {
            "mrenclave": report.mr_enclave.hex(),
            "mrsigner": report.mr_signer.hex(),
            "isvprodid": str(report.isv_prod_id),
            "isvsvn": str(report.isv_svn),
            "attributes": report.attributes.raw.hex(),
            "report_data": report.report_data.hex(),
        }
    out = {
        "mrtd": report.mr_td.hex(),
        "rtmr0": report.rtmr0.hex(),
        "rtmr1": report.rtmr1.hex(),
        "rtmr2": report.rtmr2.hex(),
        "rtmr3": report.rtmr3.hex(),
        "mrseam": report.mr_seam.hex(),
        "mrsignerseam": report.mr_signer_seam.hex(),
        "mrconfigid": report.mr_config_id.hex(),
        "mrowner": report.mr_owner.hex(),
        "mrownerconfig": report.mr_owner_config.hex(),
        "td_attributes": report.td_attributes.raw.hex(),
        "xfam": report.xfam.hex(),
        "tee_tcb_svn": report.tee_tcb_svn.hex(),
        "report_data": report.report_data.hex(),
    }
    if isinstance(report, TdReport15):
        out["tee_tcb_svn2"] = report.tee_tcb_svn2.hex()
        out["mrservicetd"] = report.mr_service_td.hex()
    return out


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
class _CheckedCollateral:
    tcb_info: TcbInfo
    qe_identity: QeIdentity
    crls: tuple[Crl, Crl]
    summary: CollateralSummary
    window: Window


@dataclass(frozen=True, slots=True)
class _CheckedPck:
    extensions: PckExtensions
    public_key: ec.EllipticCurvePublicKey
    window: Window


class QuoteVerifier:
    """Verifies quotes to one trust anchor, caching collateral and PCK chain work."""

    def __init__(self, trust_anchor: TrustAnchor, *, cache_size: int = _CACHE_SIZE) -> None:
        self.trust_anchor = trust_anchor
        self._collateral: _Lru[bytes, _CheckedCollateral] = _Lru(cache_size)
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
    ) -> tuple[_CheckedCollateral, ChainValidator | None]:
        """The checked collateral, and the chain validator built for it when it was not cached."""
        cached = self._collateral.get(collateral.digest)
        if cached is not None and t in cached.window:
            return cached, None
        checked, validator = _check_collateral(collateral, now, t, self.trust_anchor)
        self._collateral.put(collateral.digest, checked)
        return checked, validator

    def _checked_pck(
        self,
        qe_block: QeReportCertificationData,
        collateral: Collateral,
        checked: _CheckedCollateral,
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
        _ecdsa_verify(
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


def _check_collateral(
    collateral: Collateral, now: datetime, t: float, anchor: TrustAnchor
) -> tuple[_CheckedCollateral, ChainValidator]:
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
    checked = _CheckedCollateral(tcb_info, qe_identity, (root_crl, pck_crl), summary, window)
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
    _ecdsa_verify(
        key,
        signature,
        body.encode(),
        f"{check}.signature",
        f"{name} signature does not verify over the received bytes",
    )
    return window & Window(issue.timestamp(), next_update.timestamp())


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
    _ecdsa_verify(
        key,
        sig.signature,
        quote.signed_data,
        "quote.signature",
        "quote signature does not verify under the attestation key",
    )


def _ecdsa_verify(
    key: ec.EllipticCurvePublicKey, raw_sig: bytes, data: bytes, check: str, message: str
) -> None:
    if len(raw_sig) != 64:
        raise SignatureError(check, f"signature must be 64 bytes (r || s), got {len(raw_sig)}")
    r = int.from_bytes(raw_sig[:32], "big")
    s = int.from_bytes(raw_sig[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA)
    except InvalidSignature:
        raise SignatureError(check, message) from None


def _tcb_verdict(
    quote: Quote,
    raw: bytes,
    qe_block: QeReportCertificationData,
    pck: PckExtensions,
    checked: _CheckedCollateral,
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


def checks_for(tee: str) -> tuple[str, ...]:
    """The checks that apply to a quote of this TEE ("sgx" quotes have no TDX module)."""
    return tuple(name for name, _ in CHECKS if tee == "tdx" or name != "tcb.tdx_module")
