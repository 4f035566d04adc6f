"""The pinned trust anchor, and certificate chains validated against it with CRLs at a given time.

Path validation is `cryptography`'s RFC 5280 verifier with the pinned root as the only trusted
certificate; every certificate of the path (the root included) must then be cleared by a CRL
from its issuer (unknown revocation status is a rejection); certificate and CRL validity windows
are enforced at the caller's `now`. Certificates that travel with the evidence are only ever
*untrusted* path candidates; a root inside a quote is never trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from importlib import resources
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import SignatureAlgorithmOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from attestation.der import BIT_STRING, DerError, tlv
from attestation.errors import (
    CertificateError,
    CollateralExpiredError,
    CollateralFormatError,
    RevokedError,
)

__all__ = [
    "INTEL_ROOT_SHA256",
    "ChainValidator",
    "Crl",
    "TrustAnchor",
    "Window",
    "load_crl",
    "load_pem_chain",
    "malformed_certificates",
]

INTEL_ROOT_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"


class Window:
    """Closed interval of Unix seconds during which a validation result holds. Immutable by
    convention (a plain slotted class: it is built many times per cold verification)."""

    __slots__ = ("end", "start")

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"Window({self.start}, {self.end})"

    def __contains__(self, t: float) -> bool:
        return self.start <= t <= self.end

    def __and__(self, other: Window) -> Window:
        return Window(max(self.start, other.start), min(self.end, other.end))


@dataclass(frozen=True)
class TrustAnchor:
    """A pinned root certificate. `is_intel` tells the production Intel SGX Root CA apart from
    any other root (a simulator's, a test's): verdicts say which one was used."""

    certificate: x509.Certificate
    label: str

    @classmethod
    def intel(cls) -> TrustAnchor:
        """Intel SGX Root CA, shipped as package data and checked against its known SHA-256."""
        der = resources.files("attestation").joinpath("data/intel_sgx_root_ca.der").read_bytes()
        if hashlib.sha256(der).hexdigest() != INTEL_ROOT_SHA256:
            raise CertificateError("root", "packaged Intel SGX Root CA does not match its pin")
        return cls(x509.load_der_x509_certificate(der), "Intel SGX Root CA")

    @classmethod
    def from_bytes(cls, data: bytes, label: str) -> TrustAnchor:
        """A root certificate in DER or PEM."""
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                return cls(x509.load_pem_x509_certificate(data), label)
            return cls(x509.load_der_x509_certificate(data), label)
        except ValueError as exc:
            raise CertificateError("root", f"trust anchor is not a certificate: {exc}") from None

    @cached_property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def is_intel(self) -> bool:
        return self.fingerprint == INTEL_ROOT_SHA256


def load_pem_chain(pem: str | bytes, check: str) -> list[x509.Certificate]:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise CertificateError(check, f"certificate chain is not valid PEM: {exc}") from None
    return certs


@contextmanager
def malformed_certificates(check: str) -> Iterator[None]:
    """`cryptography` parses some X.509 fields (names, version) only when they are read; turn
    what such a read raises into a `CertificateError` naming `check`."""
    try:
        yield
    except (ValueError, TypeError, x509.InvalidVersion) as exc:
        raise CertificateError(check, f"malformed certificate: {exc}") from None


@dataclass(frozen=True)
class Crl:
    """A CRL parsed by `cryptography`, with its TBSCertList and signature as received, so the
    signature is checked over the received bytes rather than a re-encoding."""

    parsed: x509.CertificateRevocationList
    tbs: bytes
    signature: bytes

    @property
    def issuer(self) -> x509.Name:
        """`cryptography` parses names on first read: a malformed one is a format error."""
        try:
            return self.parsed.issuer
        except (ValueError, TypeError) as exc:
            raise CollateralFormatError(f"CRL issuer name is malformed: {exc}") from None

    @property
    def next_update(self) -> datetime | None:
        return self.parsed.next_update_utc


def load_crl(der: bytes, name: str) -> Crl:
    """Parse a DER CRL: `CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm,
    signatureValue BIT STRING }`; only ECDSA-with-SHA256 (Intel's algorithm) is accepted."""
    try:
        parsed = x509.load_der_x509_crl(der)
        _, pos, end = tlv(der, 0, len(der))
        _, _, tbs_end = tlv(der, pos, end)
        _, _, alg_end = tlv(der, tbs_end, end)
        tag, sig_start, sig_end = tlv(der, alg_end, end)
    except (ValueError, TypeError, x509.InvalidVersion, DerError) as exc:
        raise CollateralFormatError(f"{name} is not a DER CRL: {exc}") from None
    if parsed.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise CollateralFormatError(f"{name} is not signed with ECDSA-SHA256")
    if tag != BIT_STRING or sig_end != end or der[sig_start : sig_start + 1] != b"\x00":
        raise CollateralFormatError(f"{name} signature is not a BIT STRING")
    return Crl(parsed, der[pos:tbs_end], der[sig_start + 1 : sig_end])


def crl_window(crl: Crl) -> Window:
    next_update = crl.next_update
    end = next_update.timestamp() if next_update is not None else float("inf")
    return Window(crl.parsed.last_update_utc.timestamp(), end)


def cert_window(cert: x509.Certificate) -> Window:
    return Window(cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())


class ChainValidator:
    """Validates certificate chains to one trust anchor at one instant, with two CRLs: the
    root CA CRL (issued by the anchor) and one CA's CRL (the PCK CRL).

    Path building and RFC 5280 path validation are `cryptography`'s (`x509.verification`);
    revocation is checked here against the CRLs, for every certificate on the path, the anchor
    included. A certificate whose issuer has no CRL here has unknown revocation status and is
    rejected. Build one per verification: it is bound to `now`."""

    def __init__(
        self,
        anchor: TrustAnchor,
        root_crl: Crl,
        ca_crl: Crl,
        now: datetime,
    ) -> None:
        self._anchor = anchor
        self._now = now
        self._root_crl = root_crl
        self._ca_crl = ca_crl
        self._ca_crl_issuer = ca_crl.issuer
        self._verifier = (
            PolicyBuilder()
            .store(Store([anchor.certificate]))
            .time(now.astimezone(UTC).replace(tzinfo=None))
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        self._crl_signatures: dict[tuple[int, x509.Certificate], bool] = {}
        for name, crl in (("root CA CRL", root_crl), ("CA CRL", ca_crl)):
            if now.timestamp() not in crl_window(crl):
                raise CollateralExpiredError(
                    "collateral.crls", f"{name} is not valid at {now.isoformat()} (CrlExpired)"
                )
        self._check_not_revoked(anchor.certificate, anchor.certificate, "collateral.crls")
        self._window = cert_window(anchor.certificate) & crl_window(root_crl) & crl_window(ca_crl)

    def validate(
        self, chain: Sequence[x509.Certificate], check: str, *, path_length: int
    ) -> Window:
        """Validate `chain[0]` (leaf) through the untrusted `chain[1:]` to the anchor, on a path
        of exactly `path_length` certificates (anchor included): DCAP fixes the shape of every
        chain, so a certificate signed one level higher or lower is refused.

        Certificates that travel with the evidence are only untrusted path candidates (a root
        among them is never trusted). Returns the window during which the result holds (every
        certificate on the path and both CRLs valid). Raises a `VerificationError` subclass
        naming `check`."""
        if not chain:
            raise CertificateError(check, "certificate chain is empty")
        with malformed_certificates(check):
            return self._validate(chain, check, path_length)

    def _validate(self, chain: Sequence[x509.Certificate], check: str, path_length: int) -> Window:
        leaf, *rest = chain
        try:
            path = self._verifier.verify(leaf, rest).chain
        except x509.verification.VerificationError as exc:
            for cert in chain:
                self._check_time(cert, check)
            raise CertificateError(
                check,
                f"{_name(leaf)} does not chain to {self._anchor.label}: {_first_line(exc)}",
            ) from None
        if len(path) != path_length:
            raise CertificateError(
                check,
                f"{_name(leaf)} is {len(path) - 1} certificate(s) below {self._anchor.label}, "
                f"expected {path_length - 1}",
            )
        window = self._window
        for cert, issuer in pairwise(path):
            self._check_not_revoked(cert, issuer, check)
            window &= cert_window(cert)
        return window

    def _check_time(self, cert: x509.Certificate, check: str) -> None:
        if self._now.timestamp() not in cert_window(cert):
            state = "expired" if self._now > cert.not_valid_after_utc else "not yet valid"
            raise CertificateError(
                check, f"certificate {_name(cert)} is {state} at {self._now.isoformat()}"
            )

    def _check_not_revoked(
        self, cert: x509.Certificate, issuer: x509.Certificate, check: str
    ) -> None:
        """`issuer` issued `cert` on a validated path; its CRL must be here and clear `cert`."""
        if issuer == self._anchor.certificate:
            crl = self._root_crl
        elif self._ca_crl_issuer == issuer.subject:
            crl = self._ca_crl
        else:
            raise CertificateError(check, f"no CRL from {_name(issuer)}: revocation status unknown")
        self._check_crl_signature(crl, issuer, check)
        if crl.parsed.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise RevokedError(
                check, f"certificate {_name(cert)} (serial {cert.serial_number:x}) is revoked"
            )

    def _check_crl_signature(self, crl: Crl, issuer: x509.Certificate, check: str) -> None:
        key = (id(crl), issuer)
        if key not in self._crl_signatures:
            self._crl_signatures[key] = _ecdsa_valid(issuer.public_key(), crl)
        if not self._crl_signatures[key]:
            where = (
                f"the pinned {self._anchor.label}: the collateral chains to another root"
                if issuer == self._anchor.certificate
                else "the certificate on the path"
            )
            raise CertificateError(
                check, f"CRL of {crl.issuer.rfc4514_string()} is not signed by its issuer, {where}"
            )


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _ecdsa_valid(key: object, crl: Crl) -> bool:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(crl.signature, crl.tbs, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


_CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, None
)


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _first_line(exc: Exception) -> str:
    return str(exc).split("(encountered", 1)[0].strip()
