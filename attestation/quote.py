"""Parse Intel DCAP quotes (v3 SGX, v4 TDX 1.0 / SGX, v5 TDX 1.0 / 1.5 / SGX) into frozen values.

Layouts follow Intel's "Quote Generation / Verification Library" specifications. All integers are
little-endian. Lengths always come from the quote's own length fields, never from the buffer
size: bytes after the signature data (padding) are legal and ignored, and so is slack inside a
length-prefixed block. Any malformed input raises `QuoteFormatError` naming the field and its
absolute offset; no other exception escapes `parse_quote`, whatever the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from attestation.errors import QuoteFormatError

__all__ = [
    "AttestationKeyType",
    "BodyType",
    "CertificationData",
    "CertificationDataType",
    "QeReportCertificationData",
    "Quote",
    "QuoteHeader",
    "QuoteSignatureData",
    "SgxAttributes",
    "SgxReportBody",
    "TdAttributes",
    "TdReport10",
    "TdReport15",
    "TeeType",
    "decode_quote_file",
    "parse_quote",
    "parse_report_body",
]

HEADER_SIZE = 48
SGX_REPORT_SIZE = 384
TD_REPORT10_SIZE = 584
TD_REPORT15_SIZE = 648
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


class TeeType(IntEnum):
    SGX = 0x00000000
    TDX = 0x00000081


class AttestationKeyType(IntEnum):
    ECDSA_P256 = 2
    ECDSA_P384 = 3


class BodyType(IntEnum):
    """Report body type (the v5 body descriptor; implied by version and TEE type before v5)."""

    SGX = 1
    TD_REPORT10 = 2
    TD_REPORT15 = 3


class CertificationDataType(IntEnum):
    PPID_CLEARTEXT = 1
    PPID_RSA2048_OAEP = 2
    PPID_RSA3072_OAEP = 3
    PCK_LEAF_CERT = 4
    PCK_CERT_CHAIN = 5
    QE_REPORT = 6
    PLATFORM_MANIFEST = 7


_BODY_SIZES = {
    BodyType.SGX: SGX_REPORT_SIZE,
    BodyType.TD_REPORT10: TD_REPORT10_SIZE,
    BodyType.TD_REPORT15: TD_REPORT15_SIZE,
}


class _Reader:
    """Bounds-checked cursor over a byte string; offsets are absolute within the quote."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end

    def take(self, n: int, field: str) -> bytes:
        if n > self.end - self.pos:
            raise QuoteFormatError(
                field, self.pos, f"needs {n} bytes, only {max(self.end - self.pos, 0)} left"
            )
        start = self.pos
        self.pos += n
        return self.buf[start : self.pos]

    def u16(self, field: str) -> int:
        value: int = struct.unpack("<H", self.take(2, field))[0]
        return value

    def u32(self, field: str) -> int:
        value: int = struct.unpack("<I", self.take(4, field))[0]
        return value

    def sub(self, n: int, field: str) -> _Reader:
        """A reader over the next `n` bytes (a length-prefixed block); advances past them."""
        start = self.pos
        self.take(n, field)
        return _Reader(self.buf, start, start + n)


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    """The 48-byte quote header. `qe_svn`/`pce_svn` are informational (v3 only; reserved later)."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True, slots=True)
class SgxAttributes:
    """SGX ATTRIBUTES: 8 bytes of flags + 8 bytes of XFRM."""

    raw: bytes

    @property
    def flags(self) -> int:
        return int.from_bytes(self.raw[:8], "little")

    @property
    def xfrm(self) -> int:
        return int.from_bytes(self.raw[8:16], "little")

    @property
    def init(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def debug(self) -> bool:
        return bool(self.flags & 0x02)

    @property
    def mode64bit(self) -> bool:
        return bool(self.flags & 0x04)

    @property
    def provision_key(self) -> bool:
        return bool(self.flags & 0x10)

    @property
    def einittoken_key(self) -> bool:
        return bool(self.flags & 0x20)

    @property
    def kss(self) -> bool:
        return bool(self.flags & 0x80)


@dataclass(frozen=True, slots=True)
class TdAttributes:
    """TDATTRIBUTES (64 bits): TUD bits 0-7, SEC bits 8-31, OTHER bits 32-63 (TDX ABI spec)."""

    raw: bytes

    @property
    def value(self) -> int:
        return int.from_bytes(self.raw, "little")

    @property
    def debug(self) -> bool:
        """Bit 0. Any TUD bit (0-7) set means the TD is not a production TD."""
        return bool(self.value & 0xFF)

    @property
    def sept_ve_disable(self) -> bool:
        return bool(self.value & (1 << 28))

    @property
    def pks(self) -> bool:
        return bool(self.value & (1 << 30))

    @property
    def key_locker(self) -> bool:
        return bool(self.value & (1 << 31))

    @property
    def perfmon(self) -> bool:
        return bool(self.value & (1 << 63))

    @property
    def reserved_bits_set(self) -> bool:
        """SEC bits 8-27 and 29, OTHER bits 32-62: must be zero."""
        return bool(self.value & (0x0FFFFF00 | (1 << 29) | 0x7FFFFFFF00000000))


@dataclass(frozen=True, slots=True)
class SgxReportBody:
    """SGX enclave report body (384 bytes); also the QE report's layout."""

    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: SgxAttributes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes


@dataclass(frozen=True, slots=True)
class TdReport10:
    """TDX 1.0 TD report body (584 bytes)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: TdAttributes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes

    @property
    def rtmrs(self) -> tuple[bytes, bytes, bytes, bytes]:
        return (self.rtmr0, self.rtmr1, self.rtmr2, self.rtmr3)


@dataclass(frozen=True, slots=True)
class TdReport15(TdReport10):
    """TDX 1.5 TD report body (648 bytes): TD report 1.0 + TEE_TCB_SVN2 + MRSERVICETD."""

    tee_tcb_svn2: bytes
    mr_service_td: bytes


Report = SgxReportBody | TdReport10 | TdReport15


@dataclass(frozen=True, slots=True)
class CertificationData:
    """A certification data block: its type and raw payload (e.g. a PEM PCK chain for type 5)."""

    type: int
    data: bytes
    qe_report_certification: QeReportCertificationData | None = None


@dataclass(frozen=True, slots=True)
class QeReportCertificationData:
    """The QE report, its PCK signature, the QE auth data and the certification data under it.

    In v4/v5 quotes this is certification data type 6 wrapping (usually) type 5. In v3 quotes
    the same fields sit directly in the signature data; the parser presents them the same way.
    """

    qe_report: SgxReportBody
    qe_report_raw: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification_data: CertificationData


@dataclass(frozen=True, slots=True)
class QuoteSignatureData:
    """ECDSA-P256 quote signature data. `certification_data` is the outer block as on the wire."""

    signature: bytes
    attestation_key: bytes
    certification_data: CertificationData
    qe_report_certification: QeReportCertificationData | None


@dataclass(frozen=True, slots=True)
class Quote:
    header: QuoteHeader
    body_type: BodyType
    report: Report
    signed_data: bytes
    signature_data: QuoteSignatureData
    size: int

    @property
    def tee(self) -> str:
        """ "sgx" or "tdx", from the report body's type."""
        return "sgx" if self.body_type is BodyType.SGX else "tdx"


def parse_report_body(raw: bytes, body_type: BodyType) -> Report:
    """Parse a bare report body of `body_type` (an SGX report or a TD report 1.0 / 1.5), e.g. one
    carried in a zk journal. Raises `QuoteFormatError` when `raw` is not exactly its size."""
    size = _BODY_SIZES[body_type]
    if len(raw) != size:
        raise QuoteFormatError("report_body", 0, f"{body_type.name} body must be {size} bytes")
    if body_type is BodyType.SGX:
        return _parse_sgx_report(raw)
    return _parse_td_report(raw, body_type)


def parse_quote(raw: bytes) -> Quote:
    """Parse a DCAP quote. Raises `QuoteFormatError` (only) on malformed input."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise QuoteFormatError("quote", 0, f"expected bytes, got {type(raw).__name__}")
    buf = bytes(raw)
    reader = _Reader(buf, 0, len(buf))
    header = _parse_header(reader)
    body_type = _body_type(reader, header)
    if body_type is BodyType.SGX:
        report: Report = _parse_sgx_report(reader.take(SGX_REPORT_SIZE, "report_body"))
    else:
        report = _parse_td_report(reader.take(_BODY_SIZES[body_type], "report_body"), body_type)
    signed_data = buf[: reader.pos]
    sig_len = reader.u32("signature_data_len")
    sig_reader = reader.sub(sig_len, "signature_data")
    signature_data = _parse_signature_data(sig_reader, header.version)
    return Quote(header, body_type, report, signed_data, signature_data, reader.pos)


def _parse_header(r: _Reader) -> QuoteHeader:
    version = r.u16("header.version")
    if version not in (3, 4, 5):
        raise QuoteFormatError("header.version", 0, f"unsupported quote version {version}")
    return QuoteHeader(
        version=version,
        attestation_key_type=r.u16("header.attestation_key_type"),
        tee_type=r.u32("header.tee_type"),
        qe_svn=r.u16("header.qe_svn"),
        pce_svn=r.u16("header.pce_svn"),
        qe_vendor_id=r.take(16, "header.qe_vendor_id"),
        user_data=r.take(20, "header.user_data"),
    )


def _body_type(r: _Reader, header: QuoteHeader) -> BodyType:
    """The body layout: from the v5 descriptor, or from version + TEE type before v5."""
    if header.version == 5:
        at = r.pos
        raw_type = r.u16("body.type")
        size = r.u32("body.size")
        if raw_type not in (1, 2, 3):
            raise QuoteFormatError("body.type", at, f"unknown report body type {raw_type}")
        body_type = BodyType(raw_type)
        if size != _BODY_SIZES[body_type]:
            raise QuoteFormatError(
                "body.size", at + 2, f"{body_type.name} body must be {_BODY_SIZES[body_type]} bytes"
            )
        return body_type
    if header.tee_type == TeeType.SGX:
        return BodyType.SGX
    if header.tee_type == TeeType.TDX and header.version == 4:
        return BodyType.TD_REPORT10
    raise QuoteFormatError(
        "header.tee_type",
        4,
        f"TEE type {header.tee_type:#x} is not valid for version {header.version}",
    )


def _parse_sgx_report(b: bytes) -> SgxReportBody:
    (misc_select,) = struct.unpack_from("<I", b, 16)
    isv_prod_id, isv_svn, config_svn = struct.unpack_from("<HHH", b, 256)
    return SgxReportBody(
        cpu_svn=b[0:16],
        misc_select=misc_select,
        isv_ext_prod_id=b[32:48],
        attributes=SgxAttributes(b[48:64]),
        mr_enclave=b[64:96],
        mr_signer=b[128:160],
        config_id=b[192:256],
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=config_svn,
        isv_family_id=b[304:320],
        report_data=b[320:384],
    )


def _parse_td_report(b: bytes, body_type: BodyType) -> TdReport10:
    base = (
        b[0:16],  # tee_tcb_svn
        b[16:64],  # mr_seam
        b[64:112],  # mr_signer_seam
        b[112:120],  # seam_attributes
        TdAttributes(b[120:128]),
        b[128:136],  # xfam
        b[136:184],  # mr_td
        b[184:232],  # mr_config_id
        b[232:280],  # mr_owner
        b[280:328],  # mr_owner_config
        b[328:376],  # rtmr0
        b[376:424],  # rtmr1
        b[424:472],  # rtmr2
        b[472:520],  # rtmr3
        b[520:584],  # report_data
    )
    if body_type is BodyType.TD_REPORT15:
        return TdReport15(*base, b[584:600], b[600:648])
    return TdReport10(*base)


def _parse_signature_data(r: _Reader, version: int) -> QuoteSignatureData:
    signature = r.take(64, "signature_data.signature")
    attestation_key = r.take(64, "signature_data.attestation_key")
    if version == 3:
        qe_block = _parse_qe_report_block(r, "signature_data")
        return QuoteSignatureData(signature, attestation_key, qe_block.certification_data, qe_block)
    outer = _parse_certification_data(r, "signature_data.certification_data", nested=False)
    return QuoteSignatureData(signature, attestation_key, outer, outer.qe_report_certification)


def _parse_qe_report_block(r: _Reader, field: str) -> QeReportCertificationData:
    qe_report_raw = r.take(SGX_REPORT_SIZE, f"{field}.qe_report")
    qe_report_signature = r.take(64, f"{field}.qe_report_signature")
    auth_len = r.u16(f"{field}.qe_auth_data_len")
    qe_auth_data = r.take(auth_len, f"{field}.qe_auth_data")
    inner = _parse_certification_data(r, f"{field}.certification_data", nested=True)
    return QeReportCertificationData(
        qe_report=_parse_sgx_report(qe_report_raw),
        qe_report_raw=qe_report_raw,
        qe_report_signature=qe_report_signature,
        qe_auth_data=qe_auth_data,
        certification_data=inner,
    )


def _parse_certification_data(r: _Reader, field: str, *, nested: bool) -> CertificationData:
    at = r.pos
    cert_type = r.u16(f"{field}.type")
    size = r.u32(f"{field}.size")
    valid = range(1, 8)
    if cert_type not in valid or (nested and cert_type == CertificationDataType.QE_REPORT):
        raise QuoteFormatError(f"{field}.type", at, f"unknown certification data type {cert_type}")
    body = r.sub(size, f"{field}.data")
    if cert_type == CertificationDataType.QE_REPORT:
        qe_block = _parse_qe_report_block(body, f"{field}.qe_report_certification")
        return CertificationData(cert_type, r.buf[body.end - size : body.end], qe_block)
    return CertificationData(cert_type, body.take(size, f"{field}.data"))


def decode_quote_file(content: bytes) -> bytes:
    """The quote in a file's content: raw binary, or hex text (optionally `0x`-prefixed, may be
    wrapped over several lines). A binary quote never looks like hex text: it starts with a
    small little-endian version number, i.e. a zero byte at offset 1."""
    text = b"".join(content.split())
    if text[:2].lower() == b"0x":
        text = text[2:]
    if not text or not all(c in b"0123456789abcdefABCDEF" for c in text):
        return content
    if len(text) % 2:
        raise QuoteFormatError("hex", len(text), "odd number of hex digits")
    return bytes.fromhex(text.decode())
