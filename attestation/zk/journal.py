"""Automata's DCAP guest journal: what a RISC Zero receipt says the DCAP verification found.

Automata's guest program verifies a quote against collateral inside the zkVM and commits this
journal (all integers big-endian, unlike the quote itself):

    u16 output length ‖ output ‖ u64 verification time (Unix seconds) ‖ six 32-byte hashes
    output = u16 quote version ‖ u16 body type (1 SGX, 2 TD 1.0, 3 TD 1.5) ‖ u8 TCB status ‖
             FMSPC (6) ‖ report body (384 / 584 / 648, the quote's own little-endian layout) ‖
             advisory IDs (Solidity ABI `string[]`, absent when there are none)

The hashes name the collateral used: TCB info and QE identity content hashes, the Intel root CA
and TCB signing CA (keccak-256 of each certificate's TBS), and the root CA and PCK CRLs. The
TCB status byte is Automata's on-chain `TCBStatus` enum. Lengths come from the journal's own
fields and must account for every byte; anything else is a `JournalFormatError` with its offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from attestation.report import BodyType, SgxReportBody, TdReport10, parse_report_body
from attestation.tcb import TcbStatus
from attestation.verified import report_measurements
from attestation.zk.errors import JournalFormatError

__all__ = ["CollateralHashes", "DcapJournal", "decode_dcap_journal"]

_HEADER = 2 + 2 + 1 + 6
_TRAILER = 8 + 6 * 32
_BODY_SIZES = {BodyType.SGX: 384, BodyType.TD_REPORT10: 584, BodyType.TD_REPORT15: 648}
_VERSIONS = {3: {BodyType.SGX}, 4: {BodyType.SGX, BodyType.TD_REPORT10}, 5: set(BodyType)}
#: Automata on-chain PCCS `TCBStatus`; 7 (TCB_UNRECOGNIZED) is not a status a quote can have.
_TCB_STATUS = (
    TcbStatus.UP_TO_DATE,
    TcbStatus.SW_HARDENING_NEEDED,
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED,
    TcbStatus.CONFIGURATION_NEEDED,
    TcbStatus.OUT_OF_DATE,
    TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
    TcbStatus.REVOKED,
)
_MAX_ADVISORIES = 256


@dataclass(frozen=True, slots=True)
class CollateralHashes:
    """The collateral the guest verified with, by hash (Automata's hashing, see module doc)."""

    tcb_info: bytes
    qe_identity: bytes
    root_ca: bytes
    tcb_signing_ca: bytes
    root_ca_crl: bytes
    pck_crl: bytes

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name).hex() for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class DcapJournal:
    """A decoded journal. It is a claim until the receipt carrying it has verified."""

    quote_version: int
    body_type: BodyType
    tcb_status: TcbStatus
    fmspc_bytes: bytes
    report: SgxReportBody | TdReport10
    advisory_ids: tuple[str, ...]
    verified_at: datetime
    collateral: CollateralHashes

    @property
    def tee(self) -> str:
        return "sgx" if self.body_type is BodyType.SGX else "tdx"

    @property
    def fmspc(self) -> str:
        return self.fmspc_bytes.hex().upper()

    @property
    def measurements(self) -> dict[str, str]:
        return report_measurements(self.report)


def decode_dcap_journal(journal: bytes) -> DcapJournal:
    """Decode Automata's DCAP journal; every malformed input is a `JournalFormatError`."""
    output_len = _u(journal, 0, 2, "output_length")
    if 2 + output_len + _TRAILER != len(journal):
        raise JournalFormatError(
            "output_length",
            0,
            f"{output_len} leaves {len(journal) - 2 - output_len} bytes, expected {_TRAILER}",
        )
    if output_len < _HEADER:
        raise JournalFormatError("output", 2, f"{output_len} bytes is shorter than its header")
    version = _u(journal, 2, 2, "quote_version")
    body_type = _body_type(journal, version)
    status = _u(journal, 6, 1, "tcb_status")
    if status >= len(_TCB_STATUS):
        raise JournalFormatError("tcb_status", 6, f"{status} is not a TCB status a quote can have")
    body_end = 2 + _HEADER + _BODY_SIZES[body_type]
    if body_end > 2 + output_len:
        raise JournalFormatError("report_body", 2 + _HEADER, "output ends inside the report")
    body = journal[2 + _HEADER : body_end]
    report = parse_report_body(body, body_type)
    return DcapJournal(
        quote_version=version,
        body_type=body_type,
        tcb_status=_TCB_STATUS[status],
        fmspc_bytes=journal[7:13],
        report=report,
        advisory_ids=_abi_strings(journal[body_end : 2 + output_len], body_end),
        verified_at=datetime.fromtimestamp(_u(journal, 2 + output_len, 8, "timestamp"), UTC),
        collateral=CollateralHashes(*_hashes(journal, 2 + output_len + 8)),
    )


def _u(buf: bytes, offset: int, size: int, field: str) -> int:
    if offset + size > len(buf):
        raise JournalFormatError(field, offset, f"needs {size} bytes, {len(buf) - offset} left")
    return int.from_bytes(buf[offset : offset + size], "big")


def _body_type(journal: bytes, version: int) -> BodyType:
    if version not in _VERSIONS:
        raise JournalFormatError("quote_version", 2, f"unsupported quote version {version}")
    value = _u(journal, 4, 2, "body_type")
    if value not in {t.value for t in _VERSIONS[version]}:
        raise JournalFormatError("body_type", 4, f"body type {value} with quote v{version}")
    return BodyType(value)


def _hashes(journal: bytes, offset: int) -> list[bytes]:
    return [journal[offset + 32 * i : offset + 32 * (i + 1)] for i in range(6)]


def _abi_strings(data: bytes, base: int) -> tuple[str, ...]:
    """Decode `abi.encode(string[])`; `base` is the absolute offset of `data` (for errors).
    Empty `data` means no advisories (Automata omits the encoding of an empty list)."""
    if not data:
        return ()
    if _word(data, 0, base, "advisory_ids") != 32:
        raise JournalFormatError("advisory_ids", base, "the string[] does not start at 0x20")
    count = _word(data, 32, base, "advisory_ids.length")
    if count > _MAX_ADVISORIES:
        raise JournalFormatError("advisory_ids.length", base + 32, f"{count} is too many")
    heads = 64
    out = []
    end = heads + 32 * count
    for i in range(count):
        start = heads + _word(data, heads + 32 * i, base, f"advisory_ids[{i}].offset")
        size = _word(data, start, base, f"advisory_ids[{i}].length")
        raw = data[start + 32 : start + 32 + size]
        if len(raw) != size:
            raise JournalFormatError(f"advisory_ids[{i}]", base + start, "string runs past end")
        try:
            out.append(raw.decode("ascii"))
        except UnicodeDecodeError:
            raise JournalFormatError(f"advisory_ids[{i}]", base + start, "not ASCII") from None
        end = max(end, start + 32 + -(-size // 32) * 32)
    if end != len(data):
        raise JournalFormatError("advisory_ids", base, f"{len(data) - end} bytes unaccounted for")
    return tuple(out)


def _word(data: bytes, offset: int, base: int, field: str) -> int:
    if offset < 0 or offset + 32 > len(data):
        raise JournalFormatError(field, base + offset, "ABI word runs past the end of the output")
    return int.from_bytes(data[offset : offset + 32], "big")
