"""NVIDIA GPU attestation, verified locally: pure (the clock, the trust anchor and any RIMs are
passed in; nothing is fetched).

`verify_gpu_report(report, cert_chain, nonce=..., now=..., trust_anchor=...)` runs `GPU_CHECKS`
in order and returns a `VerifiedGpu` or raises the `GpuError` naming the failed check. The
leaf certificate (the GPU's attestation key, issued at boot by the GSP firmware) carries the
firmware's FWID in its TCG DICE extension 2.23.133.5.4.1; the report repeats it in its opaque
data, and the two must agree, which ties the signed measurements to the certified firmware.

Not checked here: revocation of the NVIDIA chain (NVIDIA publishes it by OCSP, a network
service; a verdict is only as fresh as the caller's knowledge that the device is not revoked),
and RIM signatures (see `attestation.gpu.rim`). The signed report carries no "CC mode on" bit:
the mode the in-TD driver reports travels beside the report (`enclave.tee.nvml.CcState`) and is
only as trustworthy as the attested TD that reports it; `VerifiedGpu.cc_feature` is the signed
multi-GPU mode (SPT, MPT, PPCIE) where the firmware reports one.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from attestation.gpu.errors import (
    GpuCertificateError,
    GpuFwidError,
    GpuNonceError,
    GpuSignatureError,
    GpuUnsupportedError,
)
from attestation.gpu.rim import RimComparison, RimSet, compare_with_rims
from attestation.gpu.spdm import NONCE_SIZE, GpuReport, MeasurementBlock, parse_gpu_report
from attestation.pki import TrustAnchor

__all__ = [
    "FWID_OID",
    "GPU_CHECKS",
    "GPU_NONCE_LABEL",
    "NVIDIA_DEVICE_ROOT_SHA256",
    "VerifiedGpu",
    "gpu_nonce",
    "leaf_fwid",
    "nvidia_device_root",
    "verify_gpu_report",
]

NVIDIA_DEVICE_ROOT_SHA256 = "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
GPU_NONCE_LABEL = b"enclava/gpu/v1"
FWID_OID = x509.ObjectIdentifier("2.23.133.5.4.1")
_FWID_SIZE = 48
_MODELS = {"GH100": "Hopper"}

GPU_CHECKS: tuple[tuple[str, str], ...] = (
    ("report.format", "SPDM 1.1 GET_MEASUREMENTS request + signed response, NVIDIA opaque data"),
    ("chain.length", "at least the signing (leaf) certificate and one issuer"),
    ("chain.fwid", "the leaf carries the FWID extension 2.23.133.5.4.1"),
    ("chain.path", "leaf -> intermediates -> pinned device root, each valid at now"),
    ("chain.model", "the leaf names a supported GPU (GH100: Hopper)"),
    ("report.signature", "ECDSA P-384/SHA-384 by the leaf key over request || response"),
    ("report.fwid", "the report's FWID is the leaf's"),
    ("report.nonce", "the signed request nonce is the expected one"),
    ("rim.measurements", "measurements match the driver and VBIOS RIMs (when RIMs are given)"),
)


def nvidia_device_root() -> TrustAnchor:
    """NVIDIA's device identity root CA, shipped as package data and checked against its pin."""
    pem = resources.files("attestation.gpu").joinpath("data/nvidia_device_root.pem").read_bytes()
    anchor = TrustAnchor.from_bytes(pem, "NVIDIA Device Identity CA")
    if anchor.fingerprint != NVIDIA_DEVICE_ROOT_SHA256:
        raise GpuCertificateError("chain.path", "packaged NVIDIA root does not match its pin")
    return anchor


def gpu_nonce(request_nonce: bytes) -> bytes:
    """The 32-byte SPDM nonce a GPU report must answer in an Enclava attestation bundle.

    One request nonce (32 bytes, the one that also feeds REPORTDATA, see
    `attestation.binding`) binds the whole bundle; each GPU is asked for
    `SHA-256("enclava/gpu/v1" || request_nonce)`, so a GPU report is fresh for exactly that
    request and its nonce is never the REPORTDATA preimage itself.

    Other stacks map differently: Confidential Containers' trustee passes its report data and
    uses the first 32 bytes (zero-padded when shorter). Its CI sample's 48-byte value
    `87d8e24a...5581250` thus appears in the report as the SPDM nonce `87d8e24a...343fec`.
    """
    if len(request_nonce) != 32:
        raise ValueError(f"request nonce must be 32 bytes, got {len(request_nonce)}")
    return hashlib.sha256(GPU_NONCE_LABEL + request_nonce).digest()


@dataclass(frozen=True, slots=True)
class VerifiedGpu:
    """A GPU report whose every check passed: what a policy looks at."""

    report: GpuReport
    model: str
    arch: str
    leaf_subject: str
    rim: RimComparison | None
    trust_anchor: str
    trust_anchor_sha256: str
    simulated: bool
    checks: tuple[str, ...]

    @property
    def driver_version(self) -> str:
        return self.report.response.opaque.driver_version

    @property
    def vbios_version(self) -> str:
        return self.report.response.opaque.vbios_version

    @property
    def fwid(self) -> bytes:
        return self.report.response.opaque.fwid

    @property
    def nonce(self) -> bytes:
        return self.report.nonce

    @property
    def measurements(self) -> tuple[MeasurementBlock, ...]:
        return self.report.response.blocks

    @property
    def cc_feature(self) -> str | None:
        """The signed multi-GPU CC mode: SPT, MPT, PPCIE, or None where not reported."""
        return self.report.response.opaque.feature


def verify_gpu_report(
    report: bytes,
    cert_chain: bytes | str,
    *,
    nonce: bytes,
    now: datetime,
    trust_anchor: TrustAnchor,
    rims: RimSet | None = None,
) -> VerifiedGpu:
    """Verify an NVIDIA attestation report (as NVML returns it) with its PEM certificate chain
    (leaf first; a root in it is never trusted) against the expected 32-byte SPDM `nonce`
    (`gpu_nonce` for Enclava bundles), at `now`, to `trust_anchor` (`nvidia_device_root()`
    in production). With `rims`, the measurements must also match the golden values."""
    if len(nonce) != NONCE_SIZE:
        raise GpuNonceError("report.nonce", f"expected nonce must be 32 bytes, got {len(nonce)}")
    parsed = parse_gpu_report(report)
    chain = _load_chain(cert_chain)
    fwid = leaf_fwid(chain[0])
    _validate_path(chain, trust_anchor, now)
    model, arch = _model(chain[0])
    _check_signature(parsed, chain[0])
    if not hmac.compare_digest(parsed.response.opaque.fwid, fwid):
        raise GpuFwidError(
            "report.fwid",
            f"report FWID {parsed.response.opaque.fwid.hex()} is not the leaf's {fwid.hex()}",
        )
    if not hmac.compare_digest(parsed.nonce, nonce):
        raise GpuNonceError(
            "report.nonce", f"report answers nonce {parsed.nonce.hex()}, expected {nonce.hex()}"
        )
    comparison = None if rims is None else compare_with_rims(parsed, rims, model)
    checks = tuple(name for name, _ in GPU_CHECKS)
    return VerifiedGpu(
        report=parsed,
        model=model,
        arch=arch,
        leaf_subject=chain[0].subject.rfc4514_string(),
        rim=comparison,
        trust_anchor=trust_anchor.label,
        trust_anchor_sha256=trust_anchor.fingerprint,
        simulated=trust_anchor.fingerprint != NVIDIA_DEVICE_ROOT_SHA256,
        checks=checks if rims is not None else checks[:-1],
    )


def leaf_fwid(cert: x509.Certificate) -> bytes:
    """The FWID a certificate's 2.23.133.5.4.1 extension ends with: the last 48 bytes, which
    must be the content of a DER OCTET STRING (`04 30`), the SHA-384 digest of NVIDIA's
    `SEQUENCE { OID sha384, OCTET STRING digest }`."""
    try:
        ext = cert.extensions.get_extension_for_oid(FWID_OID).value
    except x509.ExtensionNotFound:
        raise GpuFwidError(
            "chain.fwid",
            f"leaf {cert.subject.rfc4514_string()} has no FWID extension {FWID_OID.dotted_string}",
        ) from None
    except ValueError as exc:
        raise GpuCertificateError("chain.fwid", f"malformed leaf extensions: {exc}") from None
    value = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
    if len(value) < _FWID_SIZE + 2 or value[-_FWID_SIZE - 2 : -_FWID_SIZE] != b"\x04\x30":
        raise GpuFwidError("chain.fwid", "FWID extension does not end with a 48-byte digest")
    return value[-_FWID_SIZE:]


def _load_chain(pem: bytes | str) -> list[x509.Certificate]:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise GpuCertificateError("chain.length", f"chain is not PEM certificates: {exc}") from None
    if len(chain) < 2:
        raise GpuCertificateError(
            "chain.length",
            f"chain has {len(chain)} certificate(s): needs at least the signing certificate "
            "and its issuer",
        )
    return chain


def _validate_path(chain: list[x509.Certificate], anchor: TrustAnchor, now: datetime) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([anchor.certificate]))
        .time(now.astimezone(UTC).replace(tzinfo=None))
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    leaf, *rest = chain
    try:
        verifier.verify(leaf, rest)
    except (x509.verification.VerificationError, ValueError) as exc:
        reason = str(exc).split("(encountered", 1)[0].strip()
        raise GpuCertificateError(
            "chain.path",
            f"{leaf.subject.rfc4514_string()} does not chain to {anchor.label} at "
            f"{now.isoformat()}: {reason}",
        ) from None


_CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, None
)


def _model(leaf: x509.Certificate) -> tuple[str, str]:
    """NVIDIA names the GPU in the leaf's CN (`GH100 A01 GSP FMC LF`)."""
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    model = (value if isinstance(value, str) else value.decode(errors="replace")).split(" ")[0]
    if model not in _MODELS:
        raise GpuUnsupportedError("chain.model", f"GPU model {model!r} is not supported (GH100)")
    return model, _MODELS[model]


def _check_signature(report: GpuReport, leaf: x509.Certificate) -> None:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise GpuSignatureError("report.signature", "the leaf key is not an ECDSA P-384 key")
    sig = report.response.signature
    der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    try:
        key.verify(der, report.signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise GpuSignatureError(
            "report.signature", "the report is not signed by the leaf certificate's key"
        ) from None
