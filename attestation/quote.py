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
from attestation.report import (
    BODY_SIZES,
    SGX_REPORT_SIZE,
    BodyType,
    Report,
    SgxReportBody,
    parse_sgx_report,
    parse_td_report,
)

__all__ = [
    "AttestationKeyType",
    "CertificationData",
    "CertificationDataType",
    "QeReportCertificationData",
    "Quote",
    "QuoteHeader",
    "QuoteSignatureData",
    "TeeType",
    "decode_quote_file",
    "parse_quote",
]

HEADER_SIZE = 48
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


class TeeType(IntEnum):
    SGX = 0x00000000
    TDX = 0x00000081


class AttestationKeyType(IntEnum):
    ECDSA_P256 = 2
    ECDSA_P384 = 3


class CertificationDataType(IntEnum):
    PPID_CLEARTEXT = 1
    PPID_RSA2048_OAEP = 2
    PPID_RSA3072_OAEP = 3
    PCK_LEAF_CERT = 4
    PCK_CERT_CHAIN = 5
    QE_REPORT = 6
    PLATFORM_MANIFEST = 7


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


def parse_quote(raw: bytes) -> Quote:
    """Parse a DCAP quote. Raises `QuoteFormatError` (only) on malformed input."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise QuoteFormatError("quote", 0, f"expected bytes, got {type(raw).__name__}")
    buf = bytes(raw)
    reader = _Reader(buf, 0, len(buf))
    header = _parse_header(reader)
    body_type = _body_type(reader, header)
    if body_type is BodyType.SGX:
        report: Report = parse_sgx_report(reader.take(SGX_REPORT_SIZE, "report_body"))
    else:
        report = parse_td_report(reader.take(BODY_SIZES[body_type], "report_body"), body_type)
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
        if size != BODY_SIZES[body_type]:
            raise QuoteFormatError(
                "body.size", at + 2, f"{body_type.name} body must be {BODY_SIZES[body_type]} bytes"
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
        qe_report=parse_sgx_report(qe_report_raw),
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
