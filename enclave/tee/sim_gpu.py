"""The simulated NVIDIA H100: GPU evidence for machines without one (tests, demo, `dev`).

Shaped like the real device: a root CA standing in for NVIDIA's device identity CA, a "GH100
Identity" intermediate, a per-device "GSP BROM" CA, and at every boot a fresh P-384 attestation
key whose "GSP FMC LF" leaf certificate carries the firmware's FWID in the TCG DICE extension
2.23.133.5.4.1 (`INTEGER 1, issuer's SubjectPublicKeyInfo, SEQUENCE { sha384, OCTET STRING }`,
as NVIDIA's leaves do). Reports are byte-compatible SPDM 1.1 GET_MEASUREMENTS request +
MEASUREMENTS response with NVIDIA's opaque data (driver and VBIOS versions, FWID, SKUs,
measurement counts), signed ECDSA P-384/SHA-384 by the boot key. They go through the same
`attestation.gpu.verify_gpu_report` as real ones: only the trust anchor differs, and the verdict
says `simulated`.

The SPDM bytes are written here, independently of `attestation.gpu.spdm` (which only parses),
so the simulator also checks the parser. With a state directory the device (its CAs) persists;
the boot key and leaf do not: like the real GPU, each start certifies a new one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from attestation import TrustAnchor
from attestation.der import OCTET_STRING, SEQUENCE, encode, encode_oid, encode_uint
from attestation.gpu.spdm import OpaqueFieldId
from attestation.gpu.verify import FWID_OID
from enclave.tee.gpu import GPU_NONCE_SIZE, CcState, GpuEvidence
from enclave.tee.sim_authority import CA_LIFETIME, Issued
from enclave.tee.state_file import load_or_create_state, read_state

__all__ = ["DEFAULT_FIRMWARE", "SimulatedGpu", "load_gpu_trust_anchor"]

STATE_FILE = "sim-gpu.json"
DEFAULT_FIRMWARE = "enclava-sim-gh100-fw-v1"
DEFAULT_DRIVER = "550.90.07"
MEASUREMENT_BLOCKS = 64
VBIOS_VERSION = "96.00.9f.00.01"
_VBIOS = bytes.fromhex("009f009601000000")  # VBIOS_VERSION in NVIDIA's opaque-data encoding
_SHA384_OID = "2.16.840.1.101.3.4.2.2"
_MUTABLE_FIRMWARE = 0x01  # DMTF measurement value type of NVIDIA's blocks
_NVDEC_DISABLED, _PPCIE_DISABLED = b"\x55", b"\x55"
_ECDSA_P384 = ec.ECDSA(hashes.SHA384())


def _name(common_name: str, organization: str = "NVIDIA Corporation") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _issue(
    subject: x509.Name,
    issuer: Issued | None,
    window: tuple[datetime, datetime],
    *,
    ca: bool,
    key: ec.EllipticCurvePrivateKey | None = None,
    extra: x509.ExtensionType | None = None,
) -> Issued:
    """A P-384 certificate signed ECDSA-SHA-384, as NVIDIA's are (`issuer=None`: self-signed)."""
    key = key or ec.generate_private_key(ec.SECP384R1())
    signer = issuer.key if issuer else key
    usage = x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(window[0])
        .not_valid_after(window[1])
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    if extra is not None:
        builder = builder.add_extension(extra, critical=False)
    return Issued(key, builder.sign(signer, hashes.SHA384()))


@dataclass(frozen=True)
class _Device:
    """The persistent part: the CAs and the device's own (BROM) CA."""

    root: Issued
    identity: Issued
    device_ca: Issued

    @classmethod
    def create(cls, now: datetime) -> _Device:
        window = (now - timedelta(days=1), now + CA_LIFETIME)
        root = _issue(_name("NVIDIA Device Identity CA", "NVIDIA"), None, window, ca=True)
        identity = _issue(_name("NVIDIA GH100 Identity"), root, window, ca=True)
        device_ca = _issue(_name("GH100 A01 GSP BROM"), identity, window, ca=True)
        return cls(root, identity, device_ca)

    def to_state(self) -> dict[str, Any]:
        return {
            "version": 1,
            **{name: getattr(self, name).to_state() for name in ("root", "identity", "device_ca")},
        }

    @classmethod
    def from_state(cls, doc: dict[str, Any]) -> _Device:
        if doc.get("version") != 1:
            raise ValueError("unsupported simulated GPU state")
        return cls(*(Issued.from_state(doc[k]) for k in ("root", "identity", "device_ca")))

    @property
    def trust_anchor(self) -> TrustAnchor:
        der = self.root.cert.public_bytes(serialization.Encoding.DER)
        short = self.root.cert.fingerprint(hashes.SHA256()).hex()[:16]
        return TrustAnchor.from_bytes(der, f"Enclava GPU simulator root {short}")


class SimulatedGpu:
    """A simulated H100 in CC mode (see the module docstring). `firmware` names the firmware
    image: the FWID and the 64 measurements derive from it, so two simulators with the same
    firmware measure the same, and RIMs can be written for it."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        firmware: str = DEFAULT_FIRMWARE,
        driver_version: str = DEFAULT_DRIVER,
        now: datetime,
    ) -> None:
        self._device = _load_or_create(state_dir, now)
        self.firmware = firmware
        self.driver_version = driver_version
        self.fwid = hashlib.sha384(f"{firmware}/fmc".encode()).digest()
        self.uuid = "GPU-" + hashlib.sha256(self._device.device_ca.pem.encode()).hexdigest()[:32]
        ca = self._device.device_ca
        window = (ca.cert.not_valid_before_utc, ca.cert.not_valid_after_utc)
        self._leaf = _issue(
            _name("GH100 A01 GSP FMC LF"), ca, window, ca=False, extra=self._fwid_extension()
        )

    @property
    def trust_anchor(self) -> TrustAnchor:
        """The simulator's root: pass it to `verify_gpu_report` instead of NVIDIA's."""
        return self._device.trust_anchor

    @property
    def certificate_chain(self) -> bytes:
        """PEM, leaf first, root last (as NVML returns it)."""
        d = self._device
        return "".join(i.pem for i in (self._leaf, d.device_ca, d.identity, d.root)).encode()

    @property
    def measurements(self) -> dict[int, bytes]:
        """The 48-byte measurement of each SPDM block index (1..64)."""
        return {
            i: hashlib.sha384(f"{self.firmware}/measurement/{i}".encode()).digest()
            for i in range(1, MEASUREMENT_BLOCKS + 1)
        }

    @property
    def vbios_version(self) -> str:
        return VBIOS_VERSION

    def cc_state(self) -> CcState:
        return CcState(enabled=True, devtools=False, environment="sim")

    def attestation_report(self, nonce: bytes) -> bytes:
        """A signed report answering `nonce` (32 bytes), in NVML's layout."""
        if not isinstance(nonce, bytes) or len(nonce) != GPU_NONCE_SIZE:
            raise ValueError(f"a GPU nonce is exactly {GPU_NONCE_SIZE} bytes")
        request = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + b"\x00"
        record = b"".join(
            bytes([index, 0x01])
            + _u16(3 + len(value))
            + bytes([_MUTABLE_FIRMWARE])
            + _u16(len(value))
            + value
            for index, value in self.measurements.items()
        )
        opaque = b"".join(_u16(kind) + _u16(len(v)) + v for kind, v in self._opaque_fields())
        response = (
            bytes([0x11, 0x60, 0x00, 0x00, MEASUREMENT_BLOCKS])
            + len(record).to_bytes(3, "little")
            + record
            + secrets.token_bytes(32)
            + _u16(len(opaque))
            + opaque
        )
        r, s = decode_dss_signature(self._leaf.key.sign(request + response, _ECDSA_P384))
        return request + response + r.to_bytes(48, "big") + s.to_bytes(48, "big")

    def collect(self, nonce: bytes) -> tuple[GpuEvidence, ...]:
        """The same shape `enclave.tee.nvml.NvmlGpus.collect` returns, for one GPU."""
        report = self.attestation_report(nonce)
        return (
            GpuEvidence(0, self.uuid, "hopper", report, self.certificate_chain, self.cc_state()),
        )

    def _opaque_fields(self) -> list[tuple[int, bytes]]:
        f = OpaqueFieldId
        return [
            (f.VBIOS_VERSION, _VBIOS),
            (f.BOARD_ID, bytes.fromhex("b1030000")),
            (f.CHIP_SKU, b"882".ljust(9, b"\x00")),
            (f.CHIP_SKU_MOD, b"0".ljust(5, b"\x00")),
            (f.PROJECT, b"1010\x00"),
            (f.PROJECT_SKU, b"0200\x00"),
            (f.PROJECT_SKU_MOD, bytes(2)),
            (f.DRIVER_VERSION, self.driver_version.encode() + b"\x00"),
            (f.GPU_INFO, bytes.fromhex("8001000000000000")),
            (f.MSRSCNT, b"".join((1).to_bytes(4, "little") for _ in range(MEASUREMENT_BLOCKS))),
            (f.NVDEC0_STATUS, _NVDEC_DISABLED),
            (f.FWID, self.fwid),
            (f.PROTECTED_PCIE_STATUS, _PPCIE_DISABLED),
            (f.OPAQUE_DATA_VERSION, (1).to_bytes(2, "little")),
            (f.FEATURE_FLAG, bytes(2)),  # SPT: single GPU passthrough
        ]

    def _fwid_extension(self) -> x509.UnrecognizedExtension:
        issuer_key = self._device.device_ca.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        fwid = encode(SEQUENCE, encode_oid(_SHA384_OID) + encode(OCTET_STRING, self.fwid))
        value = encode(SEQUENCE, encode_uint(1) + issuer_key + fwid)
        return x509.UnrecognizedExtension(FWID_OID, value)


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def load_gpu_trust_anchor(state_dir: Path) -> TrustAnchor:
    """The root of the simulated GPU persisted in `state_dir` (without creating one)."""
    return read_state(state_dir / STATE_FILE, _Device.from_state, "simulated GPU").trust_anchor


def _load_or_create(state_dir: Path | None, now: datetime) -> _Device:
    if state_dir is None:
        return _Device.create(now)
    return load_or_create_state(
        state_dir / STATE_FILE,
        load=_Device.from_state,
        create=lambda: _Device.create(now),
        dump=_Device.to_state,
        what="simulated GPU",
    )
