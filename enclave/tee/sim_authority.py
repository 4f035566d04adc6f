"""The simulated TEE's stand-in for Intel: a root CA, a PCK Platform CA and a TCB signing
certificate, shaped exactly like Intel's (P-256, Intel's subject names and extensions), and the
collateral they sign (TCB info, QE identity, root CA CRL, PCK CRL) in the samples' layout.

Quotes rooted here verify with `attestation.verify_quote` only when this root is the trust
anchor; verdicts then say `simulated`, and the default policy rejects them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestation import Collateral, TrustAnchor
from attestation.ecdsa import sign_raw_ecdsa
from attestation.pck import SGX_EXTENSIONS_OID, PckExtensions, encode_pck_extensions

__all__ = [
    "CollateralTerms",
    "Issued",
    "SimAuthority",
    "TdxPlatformTcb",
    "intel_name",
    "issue",
]

CA_LIFETIME = timedelta(days=365 * 30)
COLLATERAL_LIFETIME = timedelta(days=30)  # Intel's TCB info / QE identity / CRL cadence


def intel_name(common_name: str) -> x509.Name:
    """Intel's distinguished-name layout: only the keys tell a simulated chain apart."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Issued:
    """A private key and the certificate issued for it."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def to_state(self) -> dict[str, str]:
        key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {"key": key_pem.decode(), "cert": self.pem}

    @classmethod
    def from_state(cls, doc: dict[str, str]) -> Issued:
        key = serialization.load_pem_private_key(doc["key"].encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("simulator keys are P-256 keys")
        return cls(key, x509.load_pem_x509_certificate(doc["cert"].encode()))


def issue(
    subject: x509.Name,
    issuer: Issued | None,
    not_before: datetime,
    not_after: datetime,
    *,
    ca: bool,
    path_length: int | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    serial: int | None = None,
    extra: Sequence[x509.ExtensionType] = (),
) -> Issued:
    """A certificate shaped like Intel's (AKI, SKI, critical key usage and basic constraints);
    `issuer=None` makes a self-signed root."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    signer = issuer.key if issuer else key
    usage = x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(usage, critical=True)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    return Issued(key, builder.sign(signer, hashes.SHA256()))


@dataclass(frozen=True)
class TdxPlatformTcb:
    """What the TCB info must say about the simulated platform for it to be UpToDate."""

    fmspc: bytes
    pce_id: bytes
    pce_svn: int
    sgx_components: tuple[int, ...]
    tdx_components: tuple[int, ...]
    module_version: int
    module_isvsvn: int
    qe_mrsigner: bytes
    qe_isvprodid: int
    qe_isvsvn: int


@dataclass(frozen=True)
class CollateralTerms:
    """When collateral is issued: `issued` (the clock, passed in) and the lifetime Intel uses."""

    issued: datetime
    lifetime: timedelta = COLLATERAL_LIFETIME

    @property
    def next_update(self) -> datetime:
        return self.issued + self.lifetime


class SimAuthority:
    """Root CA -> {PCK Platform CA, TCB signing}. Persisted with the simulator's state."""

    def __init__(self, root: Issued, pck_ca: Issued, tcb_signing: Issued) -> None:
        self.root = root
        self.pck_ca = pck_ca
        self.tcb_signing = tcb_signing

    @classmethod
    def create(cls, now: datetime) -> SimAuthority:
        start, end = now - timedelta(days=1), now + CA_LIFETIME
        root = issue(intel_name("Intel SGX Root CA"), None, start, end, ca=True, path_length=1)
        pck_ca = issue(
            intel_name("Intel SGX PCK Platform CA"), root, start, end, ca=True, path_length=0
        )
        tcb = issue(intel_name("Intel SGX TCB Signing"), root, start, end, ca=False)
        return cls(root, pck_ca, tcb)

    def to_state(self) -> dict[str, Any]:
        return {
            "root": self.root.to_state(),
            "pck_ca": self.pck_ca.to_state(),
            "tcb_signing": self.tcb_signing.to_state(),
        }

    @classmethod
    def from_state(cls, doc: dict[str, Any]) -> SimAuthority:
        return cls(*(Issued.from_state(doc[k]) for k in ("root", "pck_ca", "tcb_signing")))

    @property
    def trust_anchor(self) -> TrustAnchor:
        der = self.root.cert.public_bytes(serialization.Encoding.DER)
        short = self.root.cert.fingerprint(hashes.SHA256()).hex()[:16]
        return TrustAnchor.from_bytes(der, f"Enclava TEE simulator root {short}")

    def issue_pck(self, key: ec.EllipticCurvePrivateKey, extensions: PckExtensions) -> Issued:
        """The platform's PCK certificate: Intel's subject, the SGX extension with its TCB."""
        sgx = x509.UnrecognizedExtension(SGX_EXTENSIONS_OID, encode_pck_extensions(extensions))
        return issue(
            intel_name("Intel SGX PCK Certificate"),
            self.pck_ca,
            self.pck_ca.cert.not_valid_before_utc,
            self.pck_ca.cert.not_valid_after_utc,
            ca=False,
            key=key,
            extra=[sgx],
        )

    def pck_chain_pem(self, pck: Issued) -> str:
        return pck.pem + self.pck_ca.pem + self.root.pem

    def collateral(self, platform: TdxPlatformTcb, terms: CollateralTerms) -> Collateral:
        """Collateral for `platform`, issued at `terms.issued`, valid for `terms.lifetime`."""
        tcb_info = _compact(_tcb_info(platform, terms))
        qe_identity = _compact(_qe_identity(platform, terms))
        signing_chain = self.tcb_signing.pem + self.root.pem
        return Collateral(
            pck_crl_issuer_chain=self.pck_ca.pem + self.root.pem,
            root_ca_crl=self._crl(self.root, terms),
            pck_crl=self._crl(self.pck_ca, terms),
            tcb_info_issuer_chain=signing_chain,
            tcb_info=tcb_info,
            tcb_info_signature=sign_raw_ecdsa(self.tcb_signing.key, tcb_info.encode()),
            qe_identity_issuer_chain=signing_chain,
            qe_identity=qe_identity,
            qe_identity_signature=sign_raw_ecdsa(self.tcb_signing.key, qe_identity.encode()),
        )

    def _crl(self, issuer: Issued, terms: CollateralTerms) -> bytes:
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(terms.issued)
            .next_update(terms.next_update)
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
            .sign(issuer.key, hashes.SHA256())
        )
        return crl.public_bytes(serialization.Encoding.DER)


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _tcb_info(p: TdxPlatformTcb, terms: CollateralTerms) -> dict[str, Any]:
    zero_signer = "00" * 48
    level_date = _date(terms.issued - timedelta(days=90))
    return {
        "id": "TDX",
        "version": 3,
        "issueDate": _date(terms.issued),
        "nextUpdate": _date(terms.next_update),
        "fmspc": p.fmspc.hex().upper(),
        "pceId": p.pce_id.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": 17,
        "tdxModule": {
            "mrsigner": zero_signer,
            "attributes": "0000000000000000",
            "attributesMask": "FFFFFFFFFFFFFFFF",
        },
        "tdxModuleIdentities": [
            {
                "id": f"TDX_{p.module_version:02X}",
                "mrsigner": zero_signer,
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
                "tcbLevels": [
                    {
                        "tcb": {"isvsvn": p.module_isvsvn},
                        "tcbDate": level_date,
                        "tcbStatus": "UpToDate",
                    }
                ],
            }
        ],
        "tcbLevels": [
            {
                "tcb": {
                    "sgxtcbcomponents": [{"svn": svn} for svn in p.sgx_components],
                    "pcesvn": p.pce_svn,
                    "tdxtcbcomponents": [{"svn": svn} for svn in p.tdx_components],
                },
                "tcbDate": level_date,
                "tcbStatus": "UpToDate",
            }
        ],
    }


def _qe_identity(p: TdxPlatformTcb, terms: CollateralTerms) -> dict[str, Any]:
    return {
        "id": "TD_QE",
        "version": 2,
        "issueDate": _date(terms.issued),
        "nextUpdate": _date(terms.next_update),
        "tcbEvaluationDataNumber": 17,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000",
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": p.qe_mrsigner.hex().upper(),
        "isvprodid": p.qe_isvprodid,
        "tcbLevels": [
            {
                "tcb": {"isvsvn": p.qe_isvsvn},
                "tcbDate": _date(terms.issued - timedelta(days=90)),
                "tcbStatus": "UpToDate",
            }
        ],
    }
