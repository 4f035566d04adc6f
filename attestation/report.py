"""Report bodies: the SGX enclave report and the TD reports 1.0 / 1.5 that a DCAP quote carries
(and that a zk journal or a QE report carries too), parsed into frozen values. Integers are
little-endian; the byte offsets are Intel's."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from attestation.errors import QuoteFormatError

__all__ = [
    "BODY_SIZES",
    "SGX_REPORT_SIZE",
    "TD_REPORT10_SIZE",
    "TD_REPORT15_SIZE",
    "BodyType",
    "Report",
    "SgxAttributes",
    "SgxReportBody",
    "TdAttributes",
    "TdReport10",
    "TdReport15",
    "parse_report_body",
    "parse_sgx_report",
    "parse_td_report",
]

SGX_REPORT_SIZE = 384
TD_REPORT10_SIZE = 584
TD_REPORT15_SIZE = 648


class BodyType(IntEnum):
    """Report body type (the v5 body descriptor; implied by version and TEE type before v5)."""

    SGX = 1
    TD_REPORT10 = 2
    TD_REPORT15 = 3


BODY_SIZES = {
    BodyType.SGX: SGX_REPORT_SIZE,
    BodyType.TD_REPORT10: TD_REPORT10_SIZE,
    BodyType.TD_REPORT15: TD_REPORT15_SIZE,
}


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


def parse_report_body(raw: bytes, body_type: BodyType) -> Report:
    """Parse a bare report body of `body_type` (an SGX report or a TD report 1.0 / 1.5), e.g. one
    carried in a zk journal. Raises `QuoteFormatError` when `raw` is not exactly its size."""
    size = BODY_SIZES[body_type]
    if len(raw) != size:
        raise QuoteFormatError("report_body", 0, f"{body_type.name} body must be {size} bytes")
    if body_type is BodyType.SGX:
        return parse_sgx_report(raw)
    return parse_td_report(raw, body_type)


def parse_sgx_report(b: bytes) -> SgxReportBody:
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


def parse_td_report(b: bytes, body_type: BodyType) -> TdReport10:
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
