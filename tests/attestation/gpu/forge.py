"""A test's own GPU PKI: a root and a leaf with chosen FWID, name and curve, and re-signing of
report bytes, to reach the checks a real sample cannot (FWID mismatch, unknown model, key type)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from attestation import TrustAnchor
from attestation.gpu.spdm import parse_gpu_report

_FWID_OID = x509.ObjectIdentifier("2.23.133.5.4.1")
_SHA384_FWID_PREFIX = bytes.fromhex("303d0609608648016503040202") + b"\x04\x30"


@dataclass(frozen=True)
class ForgedPki:
    anchor: TrustAnchor
    chain: bytes
    leaf_key: ec.EllipticCurvePrivateKey

    def sign(self, report: bytes) -> bytes:
        """`report` with its signature replaced by one from this leaf key."""
        signed = parse_gpu_report(report).signed
        r, s = decode_dss_signature(self.leaf_key.sign(signed, ec.ECDSA(hashes.SHA384())))
        return signed + r.to_bytes(48, "big") + s.to_bytes(48, "big")


def forge_pki(
    fwid: bytes | None,
    *,
    common_name: str = "GH100 A01 GSP FMC LF",
    curve: ec.EllipticCurve | None = None,
) -> ForgedPki:
    root_key = ec.generate_private_key(ec.SECP384R1())
    leaf_key = ec.generate_private_key(curve or ec.SECP384R1())
    root_name = _name("Test GPU Root")
    root = _builder(root_name, root_name, root_key).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    )
    leaf = _builder(_name(common_name), root_name, leaf_key)
    if fwid is not None:
        value = b"\x30" + bytes([len(_SHA384_FWID_PREFIX) + len(fwid)]) + _SHA384_FWID_PREFIX + fwid
        leaf = leaf.add_extension(x509.UnrecognizedExtension(_FWID_OID, value), critical=False)
    root_cert = root.sign(root_key, hashes.SHA384())
    leaf_cert = leaf.sign(root_key, hashes.SHA384())
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf_cert, root_cert))
    return ForgedPki(TrustAnchor(root_cert, "test GPU root"), pem, leaf_key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
    )
