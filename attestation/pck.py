"""The Intel SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1).

The extension is a DER `SEQUENCE OF SEQUENCE { OBJECT IDENTIFIER, ANY }`. `cryptography` hands
it over as raw bytes (an unrecognised extension); `attestation.der` reads it into a
`PckExtensions` value. Anything malformed raises `CertificateError` naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from attestation.der import (
    BOOLEAN,
    ENUMERATED,
    INTEGER,
    OCTET_STRING,
    OID,
    SEQUENCE,
    DerError,
    encode,
    encode_oid,
    encode_uint,
    tlv,
)
from attestation.errors import CertificateError

__all__ = [
    "SGX_EXTENSIONS_OID",
    "PckExtensions",
    "PlatformConfiguration",
    "encode_pck_extensions",
    "parse_pck_extensions",
    "pck_ca_type",
]

SGX_EXTENSIONS_OID = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
_PCK_CAS = {"platform": "Intel SGX PCK Platform CA", "processor": "Intel SGX PCK Processor CA"}
_PREFIX = "1.2.840.113741.1.13.1"
_PREFIX_DER = bytes.fromhex("2a864886f84d010d01")
_CHECK = "pck.extensions"


@dataclass(frozen=True, slots=True)
class PckExtensions:
    """What Intel certifies about the platform: the TCB it had, and which platform it is."""

    ppid: bytes
    cpu_svn: bytes
    pce_svn: int
    tcb_components: tuple[int, ...]
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None = None
    configuration: PlatformConfiguration | None = None


@dataclass(frozen=True, slots=True)
class PlatformConfiguration:
    """Multi-package platform configuration (Platform CA certificates only)."""

    dynamic_platform: bool
    cached_keys: bool
    smt_enabled: bool


def pck_ca_type(cert: x509.Certificate) -> str:
    """ "platform" or "processor": which PCK CA issued this leaf (selects the PCK CRL)."""
    names = [a.value for a in cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)]
    for ca_type, common_name in _PCK_CAS.items():
        if names == [common_name]:
            return ca_type
    raise CertificateError("pck.chain", f"PCK certificate issuer is not an Intel PCK CA: {names}")


def parse_pck_extensions(cert: x509.Certificate) -> PckExtensions:
    try:
        ext = cert.extensions.get_extension_for_oid(SGX_EXTENSIONS_OID)
    except x509.ExtensionNotFound:
        raise CertificateError(_CHECK, "PCK certificate has no Intel SGX extensions") from None
    except ValueError as exc:
        raise CertificateError(_CHECK, f"PCK certificate extensions unreadable: {exc}") from None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    try:
        return _parse(raw)
    except DerError as exc:
        raise _fail(str(exc)) from None


def _parse(raw: bytes) -> PckExtensions:
    tag, start, end = tlv(raw, 0, len(raw))
    if tag != SEQUENCE or end != len(raw):
        raise _fail("extension is not one SEQUENCE")
    entries = _entries(raw, start, end)
    tcb_tag, tcb_start, tcb_end = _field(entries, (2,))
    if tcb_tag != SEQUENCE:
        raise _fail("TCB is not a SEQUENCE")
    tcb = _entries(raw, tcb_start, tcb_end)
    return PckExtensions(
        ppid=_octets(raw, entries, (1,), 16, "PPID"),
        cpu_svn=_octets(raw, tcb, (2, 18), 16, "CPUSVN"),
        pce_svn=_uint(raw, tcb, (2, 17), INTEGER),
        tcb_components=tuple(_uint(raw, tcb, (2, i), INTEGER) for i in range(1, 17)),
        pce_id=_octets(raw, entries, (3,), 2, "PCE-ID"),
        fmspc=_octets(raw, entries, (4,), 6, "FMSPC"),
        sgx_type=_uint(raw, entries, (5,), ENUMERATED),
        platform_instance_id=(
            _octets(raw, entries, (6,), 16, "PlatformInstanceID") if (6,) in entries else None
        ),
        configuration=_configuration(raw, entries) if (7,) in entries else None,
    )


def _configuration(raw: bytes, entries: _Entries) -> PlatformConfiguration:
    tag, start, end = _field(entries, (7,))
    if tag != SEQUENCE:
        raise _fail("Configuration is not a SEQUENCE")
    flags = _entries(raw, start, end)
    return PlatformConfiguration(
        *(_boolean(raw, flags, (7, i)) for i in (1, 2, 3))  # dynamic, cached keys, SMT
    )


def _boolean(data: bytes, entries: _Entries, key: tuple[int, ...]) -> bool:
    found, start, end = _field(entries, key)
    if found != BOOLEAN or end - start != 1 or data[start] not in (0x00, 0xFF):
        raise _fail(f"{_PREFIX}.{'.'.join(map(str, key))} is not a DER BOOLEAN")
    return data[start] == 0xFF


_Entries = dict[tuple[int, ...], tuple[int, int, int]]


def _fail(problem: str) -> CertificateError:
    return CertificateError(_CHECK, f"malformed SGX extension: {problem}")


def _entries(data: bytes, pos: int, end: int) -> _Entries:
    """The `SEQUENCE { OID, value }` entries of a SEQUENCE body, keyed by the OID's arcs below
    1.2.840.113741.1.13.1 (every such arc is < 128, so one byte each)."""
    out: _Entries = {}
    while pos < end:
        tag, start, stop = tlv(data, pos, end)
        if tag != SEQUENCE:
            raise _fail("entry is not a SEQUENCE")
        oid_tag, oid_start, oid_end = tlv(data, start, stop)
        value = tlv(data, oid_end, stop)
        oid = data[oid_start:oid_end]
        suffix = oid[len(_PREFIX_DER) :]
        if (
            oid_tag != OID
            or value[2] != stop
            or not oid.startswith(_PREFIX_DER)
            or not suffix
            or max(suffix) >= 0x80
        ):
            raise _fail(f"malformed entry at byte {pos}")
        out[tuple(suffix)] = value
        pos = stop
    return out


def _field(entries: _Entries, key: tuple[int, ...]) -> tuple[int, int, int]:
    if key not in entries:
        raise _fail(f"missing {_PREFIX}.{'.'.join(map(str, key))}")
    return entries[key]


def _uint(data: bytes, entries: _Entries, key: tuple[int, ...], tag: int) -> int:
    found, start, end = _field(entries, key)
    if found != tag or not 0 < end - start <= 3 or data[start] & 0x80:
        raise _fail(f"{_PREFIX}.{'.'.join(map(str, key))} is not a small unsigned integer")
    return int.from_bytes(data[start:end], "big")


def _octets(data: bytes, entries: _Entries, key: tuple[int, ...], size: int, name: str) -> bytes:
    found, start, end = _field(entries, key)
    if found != OCTET_STRING or end - start != size:
        raise _fail(f"{name} must be an OCTET STRING of {size} bytes")
    return data[start:end]


def encode_pck_extensions(ext: PckExtensions) -> bytes:
    """The DER value of the SGX extension for `ext` (the inverse of `parse_pck_extensions`), as a
    simulated platform's PCK certificate carries it."""
    if len(ext.tcb_components) != 16:
        raise ValueError("a PCK certificate carries exactly 16 TCB components")

    def entry(suffix: str, value: bytes) -> bytes:
        return encode(SEQUENCE, encode_oid(_PREFIX + suffix) + value)

    tcb = b"".join(
        entry(f".2.{i}", encode_uint(svn)) for i, svn in enumerate(ext.tcb_components, 1)
    )
    tcb += entry(".2.17", encode_uint(ext.pce_svn))
    tcb += entry(".2.18", encode(OCTET_STRING, ext.cpu_svn))
    body = (
        entry(".1", encode(OCTET_STRING, ext.ppid))
        + entry(".2", encode(SEQUENCE, tcb))
        + entry(".3", encode(OCTET_STRING, ext.pce_id))
        + entry(".4", encode(OCTET_STRING, ext.fmspc))
        + entry(".5", encode_uint(ext.sgx_type, ENUMERATED))
    )
    if ext.platform_instance_id is not None:
        body += entry(".6", encode(OCTET_STRING, ext.platform_instance_id))
    if ext.configuration is not None:
        c = ext.configuration
        flags = (c.dynamic_platform, c.cached_keys, c.smt_enabled)
        body += entry(
            ".7",
            encode(
                SEQUENCE,
                b"".join(
                    entry(f".7.{i}", encode(BOOLEAN, b"\xff" if on else b"\x00"))
                    for i, on in enumerate(flags, 1)
                ),
            ),
        )
    return encode(SEQUENCE, body)
