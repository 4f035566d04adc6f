"""Re-sign real DCAP evidence under a test PKI.

Intel signs the real samples, so a test that changes any signed byte needs signers of its own.
`TestPki` is a throwaway CA hierarchy shaped like Intel's (root CA, PCK Platform and Processor
CAs, TCB signing certificate; P-256, with Intel's subject names: only the keys differ).
`forge` turns a real quote and its collateral into equivalent evidence that verifies under
`pki.anchor` with the same TCB verdict as the original under Intel's root:

* the PCK leaf is re-issued with a new key and the real leaf's Intel SGX extension copied
  verbatim (so FMSPC, PCE-ID, CPUSVN and PCESVN are the platform's);
* a new attestation key is bound through the QE report (report data = SHA-256(key || QE auth
  data) || 32 zero bytes), the QE report is signed by the PCK key and the header + body by the
  attestation key, and the signature data is rebuilt in the quote version's layout;
* the TCB info and QE identity bodies are re-signed by the TCB signing key, and the CRLs are
  re-issued (by default with the original CRLs' validity windows).

Hooks change any of it before signing. Nothing here reads the clock: every time is an input or
one of the fixed defaults below.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestation import Collateral, TrustAnchor, parse_quote
from attestation.ecdsa import sign_raw_ecdsa as sign_raw
from attestation.pck import SGX_EXTENSIONS_OID, pck_ca_type
from attestation.quote import CertificationDataType, QeReportCertificationData, Quote
from attestation.quote_encode import encode_certification_data
from attestation.report import SGX_REPORT_SIZE, TD_REPORT10_SIZE, TD_REPORT15_SIZE, BodyType
from enclave.tee.sim_authority import Issued, intel_name, issue

__all__ = ["REPORT_SIZES", "CrlSpec", "Evidence", "Issued", "TestPki", "forge", "sign_raw"]

Window = tuple[datetime, datetime]
JsonEdit = Callable[[dict[str, Any]], None]
BytesEdit = Callable[[bytearray], None]

CA_VALIDITY: Window = (datetime(2018, 1, 1, tzinfo=UTC), datetime(2049, 12, 31, tzinfo=UTC))
QE_REPORT_DATA = slice(320, 384)
REPORT_SIZES = {
    BodyType.SGX: SGX_REPORT_SIZE,
    BodyType.TD_REPORT10: TD_REPORT10_SIZE,
    BodyType.TD_REPORT15: TD_REPORT15_SIZE,
}


def _issue(
    subject: x509.Name,
    issuer: Issued | None,
    validity: Window,
    *,
    path_length: int | None = None,
    ca: bool = True,
    serial: int | None = None,
    extra: Sequence[x509.ExtensionType] = (),
) -> Issued:
    """The simulator's Intel-shaped certificate issuance, with a validity window."""
    return issue(
        subject,
        issuer,
        validity[0],
        validity[1],
        ca=ca,
        path_length=path_length,
        serial=serial,
        extra=extra,
    )


@dataclass(frozen=True)
class CrlSpec:
    """A CRL to issue: its [thisUpdate, nextUpdate] (None: the original CRL's) and revocations."""

    window: Window | None = None
    revoked: tuple[int, ...] = ()


class TestPki:
    """Root CA -> {PCK Platform CA, PCK Processor CA, TCB signing}, each on a new P-256 key."""

    __test__ = False  # a helper, not a pytest test class

    def __init__(
        self,
        *,
        root_validity: Window = CA_VALIDITY,
        pck_ca_validity: Window = CA_VALIDITY,
        tcb_signing_validity: Window = CA_VALIDITY,
    ) -> None:
        self.root = _issue(intel_name("Intel SGX Root CA"), None, root_validity, path_length=1)
        self.pck_cas = {
            kind: _issue(
                intel_name(f"Intel SGX PCK {kind.title()} CA"),
                self.root,
                pck_ca_validity,
                path_length=0,
            )
            for kind in ("platform", "processor")
        }
        self.tcb_signing = _issue(
            intel_name("Intel SGX TCB Signing"), self.root, tcb_signing_validity, ca=False
        )

    @property
    def root_der(self) -> bytes:
        return self.root.cert.public_bytes(serialization.Encoding.DER)

    @property
    def anchor(self) -> TrustAnchor:
        return TrustAnchor.from_bytes(self.root_der, "test root")

    def issue_pck(
        self, kind: str, real_leaf: x509.Certificate, validity: Window, serial: int | None
    ) -> Issued:
        """A PCK leaf from the `kind` CA carrying `real_leaf`'s subject and SGX extension."""
        sgx = real_leaf.extensions.get_extension_for_oid(SGX_EXTENSIONS_OID).value
        assert isinstance(sgx, x509.UnrecognizedExtension)
        return _issue(
            real_leaf.subject,
            self.pck_cas[kind],
            validity,
            ca=False,
            serial=serial,
            extra=[x509.UnrecognizedExtension(SGX_EXTENSIONS_OID, sgx.value)],
        )

    def crl(self, issuer: Issued, window: Window, revoked: Sequence[int] = ()) -> bytes:
        """A DER CRL signed by `issuer`, valid over `window`, listing `revoked` serials."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(window[0])
            .next_update(window[1])
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
        )
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(window[0])
                .build()
            )
        return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Evidence:
    """A forged quote and its collateral, with the keys that signed them."""

    quote: bytes
    collateral: Collateral
    pck: Issued
    attestation_key: ec.EllipticCurvePrivateKey


def forge(
    quote: bytes,
    collateral: Collateral,
    pki: TestPki,
    *,
    edit_report: BytesEdit | None = None,
    edit_qe_report: BytesEdit | None = None,
    edit_tcb_info: JsonEdit | None = None,
    edit_qe_identity: JsonEdit | None = None,
    pck_pki: TestPki | None = None,
    pck_validity: Window | None = None,
    pck_serial: int | None = None,
    root_crl: CrlSpec | None = None,
    pck_crl: CrlSpec | None = None,
) -> Evidence:
    """Re-sign `quote` + `collateral` under `pki` (see the module docstring).

    `edit_report` gets the report body (SGX 384 / TD 584 / TD 1.5 648 bytes) before the quote is
    signed; `edit_qe_report` the 384-byte QE report after its report data has been set to bind
    the new attestation key, before the PCK key signs it; `edit_tcb_info` / `edit_qe_identity`
    the parsed JSON body, which is then re-dumped compactly and signed (without an edit the
    original text is signed as is). `pck_pki` issues the PCK chain instead of `pki` (a foreign
    root); `pck_validity` and `pck_serial` default to the real leaf's validity and a random serial.
    """
    parsed = parse_quote(quote)
    qe_block = parsed.signature_data.qe_report_certification
    assert qe_block is not None
    real_leaf = x509.load_pem_x509_certificates(qe_block.certification_data.data)[0]
    kind = pck_ca_type(real_leaf)
    issuer_pki = pck_pki or pki
    real_validity = (real_leaf.not_valid_before_utc, real_leaf.not_valid_after_utc)
    pck = issuer_pki.issue_pck(kind, real_leaf, pck_validity or real_validity, pck_serial)
    chain = pck.pem + issuer_pki.pck_cas[kind].pem + issuer_pki.root.pem
    attestation_key = ec.generate_private_key(ec.SECP256R1())

    signed = _edited_signed_data(parsed, edit_report)
    public = attestation_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )[1:]
    qe_part = _qe_report_part(qe_block, public, pck, chain, edit_qe_report)
    if parsed.header.version >= 4:
        qe_part = encode_certification_data(CertificationDataType.QE_REPORT, qe_part)
    signature_data = sign_raw(attestation_key, signed) + public + qe_part
    forged = signed + struct.pack("<I", len(signature_data)) + signature_data
    return Evidence(
        quote=forged + quote[parsed.size :],
        collateral=_collateral(
            collateral,
            pki,
            kind,
            edits=(edit_tcb_info, edit_qe_identity),
            crls=(root_crl or CrlSpec(), pck_crl or CrlSpec()),
        ),
        pck=pck,
        attestation_key=attestation_key,
    )


def _edited_signed_data(parsed: Quote, edit_report: BytesEdit | None) -> bytes:
    """Header (+ v5 body descriptor) + report body, the body passed through `edit_report`."""
    signed = bytearray(parsed.signed_data)
    body_at = len(signed) - REPORT_SIZES[parsed.body_type]
    body = bytearray(signed[body_at:])
    if edit_report:
        edit_report(body)
    assert len(body) == len(signed) - body_at, "edit_report must keep the body's size"
    return bytes(signed[:body_at] + body)


def _qe_report_part(
    qe_block: QeReportCertificationData,
    attestation_key: bytes,
    pck: Issued,
    chain: str,
    edit_qe_report: BytesEdit | None,
) -> bytes:
    """QE report (binding `attestation_key`), its PCK signature, the QE auth data and the PCK
    chain as certification data type 5 (PEM, NUL-terminated like Intel's): the v3 signature
    data tail, and the payload of v4/v5 certification data type 6."""
    auth = qe_block.qe_auth_data
    report = bytearray(qe_block.qe_report_raw)
    report[QE_REPORT_DATA] = hashlib.sha256(attestation_key + auth).digest() + bytes(32)
    if edit_qe_report:
        edit_qe_report(report)
    assert len(report) == SGX_REPORT_SIZE, "edit_qe_report must keep the report's size"
    return (
        bytes(report)
        + sign_raw(pck.key, bytes(report))
        + struct.pack("<H", len(auth))
        + auth
        + encode_certification_data(CertificationDataType.PCK_CERT_CHAIN, chain.encode() + b"\x00")
    )


def _collateral(
    original: Collateral,
    pki: TestPki,
    kind: str,
    *,
    edits: tuple[JsonEdit | None, JsonEdit | None],
    crls: tuple[CrlSpec, CrlSpec],
) -> Collateral:
    """`original` re-signed under `pki`: TCB info and QE identity by the TCB signing key, the
    root CA CRL by the root, the PCK CRL by the `kind` PCK CA."""
    tcb_info, tcb_info_signature = _resign(original.tcb_info, edits[0], pki.tcb_signing.key)
    qe_identity, qe_identity_signature = _resign(
        original.qe_identity, edits[1], pki.tcb_signing.key
    )
    signing_chain = pki.tcb_signing.pem + pki.root.pem
    pck_ca = pki.pck_cas[kind]
    root_crl, pck_crl = crls
    return Collateral(
        pck_crl_issuer_chain=pck_ca.pem + pki.root.pem,
        root_ca_crl=pki.crl(
            pki.root, root_crl.window or _crl_window(original.root_ca_crl), root_crl.revoked
        ),
        pck_crl=pki.crl(pck_ca, pck_crl.window or _crl_window(original.pck_crl), pck_crl.revoked),
        tcb_info_issuer_chain=signing_chain,
        tcb_info=tcb_info,
        tcb_info_signature=tcb_info_signature,
        qe_identity_issuer_chain=signing_chain,
        qe_identity=qe_identity,
        qe_identity_signature=qe_identity_signature,
    )


def _resign(text: str, edit: JsonEdit | None, key: ec.EllipticCurvePrivateKey) -> tuple[str, bytes]:
    if edit is not None:
        doc = json.loads(text)
        edit(doc)
        text = json.dumps(doc, separators=(",", ":"))
    return text, sign_raw(key, text.encode())


def _crl_window(der: bytes) -> Window:
    crl = x509.load_der_x509_crl(der)
    assert crl.next_update_utc is not None
    return crl.last_update_utc, crl.next_update_utc
