"""TDX boot event logs: the ACPI CCEL area, parsed into typed events and replayable RTMR events.

The CCEL area holds a TCG2 crypto-agile event log (TCG PC Client Platform Firmware Profile,
section 10): a first event in the legacy SHA-1 `TCG_PCClientPCREvent` layout whose data is the
`Spec ID Event03` header, then `TCG_PCR_EVENT2` records. Every integer is little-endian; sizes are
in bytes. Each record is

    u32 MR index | u32 event type | u32 digest count
    | digest count x (u16 algorithm id | digest of the size the header declares for that id)
    | u32 event size | event data

In CCEL, MR index 0 is MRTD and 1..4 are RTMR0..3. Events of type EV_NO_ACTION and events for
MRTD are kept in the parsed log but never extended. The log ends at the end of the buffer, at an
MR index of 0xFFFFFFFF (the area's 0xFF padding) or where only zero bytes remain.

Every malformed input raises `EventLogError` naming the byte offset; nothing else escapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from attestation.errors import EventLogError
from attestation.eventlog import RuntimeEvent

__all__ = [
    "EV_NO_ACTION",
    "SHA384",
    "CcelEvent",
    "CcelLog",
    "SpecIdHeader",
    "parse_ccel",
]

EV_NO_ACTION = 0x00000003
SHA384 = 0x000C
_SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
_SHA1_SIZE = 20
_MR_INDICES = range(5)
# The sizes TPM 2.0 fixes for the algorithms a header may name (SHA-1, SHA-256, SHA-384,
# SHA-512, SM3-256); a header that disagrees is malformed. Other ids take the declared size.
_KNOWN_SIZES = {0x0004: 20, 0x000B: 32, 0x000C: 48, 0x000D: 64, 0x0012: 32}


@dataclass(frozen=True, slots=True)
class SpecIdHeader:
    """The `Spec ID Event03` header. `digest_sizes` is `(algorithm id, digest size in bytes)`
    per algorithm, in header order; every later digest must use one of these algorithms."""

    platform_class: int
    spec_version: tuple[int, int, int]
    uintn_size: int
    digest_sizes: tuple[tuple[int, int], ...]
    vendor_info: bytes


@dataclass(frozen=True, slots=True)
class CcelEvent:
    """One `TCG_PCR_EVENT2` record, starting at byte `offset` of the CCEL area.

    `mr_index` is CCEL's (0 = MRTD, 1..4 = RTMR0..3); `digests` is `(algorithm id, digest)` in
    log order; `data` is the event data, uninterpreted."""

    offset: int
    mr_index: int
    event_type: int
    digests: tuple[tuple[int, bytes], ...]
    data: bytes

    @property
    def rtmr(self) -> int | None:
        """The RTMR this event extends (0..3), or None for MRTD events and EV_NO_ACTION."""
        if self.event_type == EV_NO_ACTION or self.mr_index == 0:
            return None
        return self.mr_index - 1

    def digest(self, algorithm: int = SHA384) -> bytes:
        """This event's digest for `algorithm`; `EventLogError` if the record has none."""
        for alg, value in self.digests:
            if alg == algorithm:
                return value
        _fail(self.offset, "event", f"has no digest for algorithm 0x{algorithm:04x}")


@dataclass(frozen=True, slots=True)
class CcelLog:
    """A parsed CCEL area: its header and every event, extended or not, in log order."""

    header: SpecIdHeader
    events: tuple[CcelEvent, ...]

    def rtmr_events(self) -> tuple[RuntimeEvent, ...]:
        """The events that extend an RTMR, as `RuntimeEvent`s for `eventlog.replay`: the
        RTMR index as `imr`, the SHA-384 digest, an empty name and the event data as payload."""
        return tuple(
            RuntimeEvent(e.rtmr, e.event_type, e.digest(SHA384), "", e.data)
            for e in self.events
            if e.rtmr is not None
        )


class _Reader:
    """Bounds-checked little-endian reads; `base` is the buffer's offset in the CCEL area, so
    every error names an offset in the area."""

    def __init__(self, data: bytes, base: int = 0) -> None:
        self.data = data
        self.base = base
        self.offset = 0

    @property
    def here(self) -> int:
        return self.base + self.offset

    def take(self, size: int, field: str) -> bytes:
        if self.offset + size > len(self.data):
            _fail(self.here, field, f"needs {size} bytes, {len(self.data) - self.offset} left")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")


def _fail(offset: int, field: str, problem: str) -> NoReturn:
    raise EventLogError(f"CCEL {field} at offset {offset}: {problem}")


def parse_ccel(data: bytes) -> CcelLog:
    """Parse a CCEL area (the raw ACPI table data, padding included) into a `CcelLog`."""
    reader = _Reader(bytes(data))
    header = _parse_header(reader)
    sizes = dict(header.digest_sizes)
    padding = min(len(reader.data.rstrip(b"\xff")), len(reader.data.rstrip(b"\x00")))
    events = []
    while reader.offset < padding and not _at_end_marker(reader):
        events.append(_parse_event(reader, sizes))
    return CcelLog(header, tuple(events))


def _at_end_marker(reader: _Reader) -> bool:
    head = reader.data[reader.offset : reader.offset + 4]
    return head == b"\xff\xff\xff\xff"


def _parse_header(reader: _Reader) -> SpecIdHeader:
    """The legacy first event: u32 PCR index, u32 type, 20-byte SHA-1 digest, u32 size, data."""
    reader.u32("header MR index")
    if reader.u32("header event type") != EV_NO_ACTION:
        _fail(4, "header event type", "the first event must be EV_NO_ACTION")
    reader.take(_SHA1_SIZE, "header SHA-1 digest")
    size = reader.u32("header event size")
    body = _Reader(reader.take(size, "header event data"), base=reader.here - size)
    header = _parse_spec_id(body)
    if body.offset != size:
        _fail(body.here, "Spec ID event", f"{size - body.offset} bytes after the vendor info")
    return header


def _parse_spec_id(body: _Reader) -> SpecIdHeader:
    """TCG_EfiSpecIDEvent: signature, platform class, version, uintn size, algorithm table."""
    if body.take(16, "Spec ID signature") != _SPEC_ID_SIGNATURE:
        _fail(body.base, "Spec ID signature", "not 'Spec ID Event03'")
    platform_class = body.u32("platform class")
    minor, major, errata = body.u8("spec minor"), body.u8("spec major"), body.u8("errata")
    uintn_size = body.u8("uintn size")
    count = body.u32("number of algorithms")
    if count == 0 or count * 4 > len(body.data) - body.offset:
        _fail(body.here - 4, "number of algorithms", f"{count} does not fit the header")
    table = tuple(_parse_algorithm(body) for _ in range(count))
    if len({alg for alg, _ in table}) != len(table):
        _fail(body.here, "digest size table", "names an algorithm twice")
    vendor_info = body.take(body.u8("vendor info size"), "vendor info")
    return SpecIdHeader(platform_class, (major, minor, errata), uintn_size, table, vendor_info)


def _parse_algorithm(body: _Reader) -> tuple[int, int]:
    start = body.here
    alg, size = body.u16("algorithm id"), body.u16("digest size")
    if size == 0 or size != _KNOWN_SIZES.get(alg, size):
        _fail(start, "digest size", f"{size} bytes for algorithm 0x{alg:04x}")
    return alg, size


def _parse_event(reader: _Reader, sizes: dict[int, int]) -> CcelEvent:
    offset = reader.offset
    mr_index = reader.u32("MR index")
    if mr_index not in _MR_INDICES:
        _fail(offset, "MR index", f"{mr_index} is not MRTD (0) or RTMR0..3 (1..4)")
    event_type = reader.u32("event type")
    count = reader.u32("digest count")
    if count > len(sizes):
        _fail(offset + 8, "digest count", f"{count}, the header declares {len(sizes)} algorithms")
    digests: list[tuple[int, bytes]] = []
    for _ in range(count):
        alg_offset = reader.offset
        alg = reader.u16("algorithm id")
        if alg not in sizes:
            _fail(alg_offset, "algorithm id", f"0x{alg:04x} is not in the header's table")
        if any(alg == seen for seen, _ in digests):
            _fail(alg_offset, "algorithm id", f"0x{alg:04x} appears twice in one event")
        digests.append((alg, reader.take(sizes[alg], f"digest 0x{alg:04x}")))
    data = reader.take(reader.u32("event size"), "event data")
    return CcelEvent(offset, mr_index, event_type, tuple(digests), data)
