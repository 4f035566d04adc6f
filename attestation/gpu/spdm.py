"""NVIDIA Hopper attestation reports: an SPDM 1.1 GET_MEASUREMENTS request followed by the GPU's
signed MEASUREMENTS response (DMTF DSP0274 1.1, sections 10.11), parsed into frozen dataclasses.

Layout (all integers little-endian, as SPDM defines them)::

    request   0  SPDMVersion 0x11 | RequestResponseCode 0xE0 | Param1 attributes (bit 0:
                 signature requested) | Param2 measurement operation (0xFF: all)
              4  Nonce (32)  -- chosen by the verifier; this is the nonce a report answers
              36 SlotIDParam (1)
    response  0  SPDMVersion | 0x60 | Param1 | Param2 (slot id)
              4  NumberOfBlocks (1) | MeasurementRecordLength (3)
              8  MeasurementRecord: blocks of Index (1) | MeasurementSpecification (1, bit 0 =
                 DMTF) | MeasurementSize (2) | DMTF type (1) | value size (2) | value
              .. Nonce (32, the responder's) | OpaqueLength (2) | OpaqueData | Signature (96)

The signature is ECDSA P-384 over SHA-384 of everything before it, request included (raw
r || s, 48 bytes each). NVIDIA's opaque data is a list of `type (2) | size (2) | value` fields
(`OpaqueFieldId`); the driver version, VBIOS version and FWID are required.

Lengths come from the length fields, never from the buffer size. Real NVML output may carry
zero padding after the signature (the Confidential Containers sample has one byte); zero
padding is tolerated, anything else is an error. Every problem is a `GpuReportFormatError`
naming the field and its offset in the whole report.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NoReturn

from attestation.gpu.errors import GpuReportFormatError

__all__ = [
    "NONCE_SIZE",
    "REQUEST_SIZE",
    "SIGNATURE_SIZE",
    "GpuReport",
    "MeasurementBlock",
    "MeasurementsRequest",
    "MeasurementsResponse",
    "OpaqueData",
    "OpaqueField",
    "OpaqueFieldId",
    "parse_gpu_report",
]

SPDM_VERSION = 0x11
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
NONCE_SIZE = 32
REQUEST_SIZE = 37
SIGNATURE_SIZE = 96
_SIGNATURE_REQUESTED = 0x01
_DMTF_SPECIFICATION = 0x01
_NVDEC_ENABLED, _NVDEC_DISABLED = 0xAA, 0x55
_FEATURES = {0: "SPT", 1: "MPT", 2: "PPCIE"}


class OpaqueFieldId(IntEnum):
    """NVIDIA's opaque-data field ids (as nvtrust's local GPU verifier names them)."""

    CERT_ISSUER_NAME = 1
    CERT_AUTHORITY_KEY_IDENTIFIER = 2
    DRIVER_VERSION = 3
    GPU_INFO = 4
    SKU = 5
    VBIOS_VERSION = 6
    MANUFACTURER_ID = 7
    TAMPER_DETECTION = 8
    SMC = 9
    VPR = 10
    NVDEC0_STATUS = 11
    MSRSCNT = 12
    CPRINFO = 13
    BOARD_ID = 14
    CHIP_SKU = 15
    CHIP_SKU_MOD = 16
    PROJECT = 17
    PROJECT_SKU = 18
    PROJECT_SKU_MOD = 19
    FWID = 20
    PROTECTED_PCIE_STATUS = 21
    SWITCH_PDI = 22
    FLOORSWEPT_PORTS = 23
    POSITION_ID = 24
    LOCK_SWITCH_STATUS = 25
    GPU_LINK_CONN = 32
    SYS_ENABLE_STATUS = 33
    OPAQUE_DATA_VERSION = 34
    CHIP_INFO = 35
    FEATURE_FLAG = 36


_DRIVER = OpaqueFieldId.DRIVER_VERSION


@dataclass(frozen=True, slots=True)
class MeasurementsRequest:
    """The verifier's GET_MEASUREMENTS request, as the GPU received and signed it."""

    version: int
    attributes: int
    operation: int
    nonce: bytes
    slot_id: int


@dataclass(frozen=True, slots=True)
class MeasurementBlock:
    """One DMTF measurement block. `index` is SPDM's (1-based; NVIDIA's RIMs count from 0)."""

    index: int
    value_type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class OpaqueField:
    """One opaque-data field as received: `field_id` (see `OpaqueFieldId`) and raw value."""

    field_id: int
    value: bytes


@dataclass(frozen=True, slots=True)
class OpaqueData:
    """NVIDIA's opaque data: every field raw (`fields`, in order) and the decoded ones a
    verifier or policy uses. Version strings are NVIDIA's spelling (VBIOS in lower-case hex)."""

    fields: tuple[OpaqueField, ...]
    driver_version: str
    vbios_version: str
    fwid: bytes
    project: str | None
    project_sku: str | None
    chip_sku: str | None
    chip_sku_mod: str | None
    measurement_counts: tuple[int, ...]
    nvdec0_enabled: bool | None
    protected_pcie_status: int | None
    feature: str | None

    def raw(self, field_id: int) -> bytes | None:
        """The raw value of a field, or None when the report does not carry it."""
        return next((f.value for f in self.fields if f.field_id == field_id), None)


@dataclass(frozen=True, slots=True)
class MeasurementsResponse:
    """The GPU's signed MEASUREMENTS response."""

    version: int
    param1: int
    param2: int
    blocks: tuple[MeasurementBlock, ...]
    responder_nonce: bytes
    opaque: OpaqueData
    signature: bytes


@dataclass(frozen=True, slots=True)
class GpuReport:
    """A parsed report. `signed` is exactly what the signature covers (request || response up
    to its signature), kept as received."""

    request: MeasurementsRequest
    response: MeasurementsResponse
    signed: bytes

    @property
    def nonce(self) -> bytes:
        """The verifier's nonce the GPU signed (the request's, not the responder's)."""
        return self.request.nonce

    @property
    def measurements(self) -> dict[int, bytes]:
        """Measurement values by SPDM block index."""
        return {block.index: block.value for block in self.response.blocks}


class _Reader:
    """Bounds-checked reads; offsets are reported from the start of the whole report."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def take(self, size: int, field: str) -> bytes:
        if self.end - self.pos < size:
            raise GpuReportFormatError(
                field, self.pos, f"truncated: needs {size} bytes, {self.end - self.pos} left"
            )
        start, self.pos = self.pos, self.pos + size
        return self.data[start : self.pos]

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "little")

    def expect(self, value: int, field: str, what: str) -> int:
        at = self.pos
        got = self.uint(1, field)
        if got != value:
            raise GpuReportFormatError(field, at, f"expected {what} 0x{value:02x}, got 0x{got:02x}")
        return got


def parse_gpu_report(data: bytes) -> GpuReport:
    """Parse an attestation report as NVML returns it (request || response, see module doc)."""
    reader = _Reader(bytes(data))
    request = _request(reader)
    response = _response(reader, request.version)
    padding = reader.data[reader.pos :]
    if padding.strip(b"\x00"):
        raise GpuReportFormatError(
            "trailing data", reader.pos, f"{len(padding)} unsigned non-zero bytes after signature"
        )
    return GpuReport(request, response, signed=reader.data[: reader.pos - SIGNATURE_SIZE])


def _request(r: _Reader) -> MeasurementsRequest:
    version = r.expect(SPDM_VERSION, "request.version", "SPDM version")
    r.expect(GET_MEASUREMENTS, "request.code", "GET_MEASUREMENTS")
    at = r.pos
    attributes = r.uint(1, "request.param1")
    if not attributes & _SIGNATURE_REQUESTED:
        raise GpuReportFormatError("request.param1", at, "the request asks for no signature")
    operation = r.uint(1, "request.param2")
    nonce = r.take(NONCE_SIZE, "request.nonce")
    slot_id = r.uint(1, "request.slot_id")
    return MeasurementsRequest(version, attributes, operation, nonce, slot_id)


def _response(r: _Reader, version: int) -> MeasurementsResponse:
    r.expect(version, "response.version", "the request's SPDM version")
    r.expect(MEASUREMENTS, "response.code", "MEASUREMENTS")
    param1 = r.uint(1, "response.param1")
    param2 = r.uint(1, "response.param2")
    count = r.uint(1, "response.number_of_blocks")
    length = r.uint(3, "response.record_length")
    record = _Reader(r.data, r.pos, r.pos + length)
    r.take(length, "response.measurement_record")
    blocks = _blocks(record, count)
    responder_nonce = r.take(NONCE_SIZE, "response.nonce")
    opaque_length = r.uint(2, "response.opaque_length")
    opaque = _Reader(r.data, r.pos, r.pos + opaque_length)
    r.take(opaque_length, "response.opaque_data")
    decoded = _opaque(opaque)
    signature = r.take(SIGNATURE_SIZE, "response.signature")
    return MeasurementsResponse(
        version, param1, param2, blocks, responder_nonce, decoded, signature
    )


def _blocks(r: _Reader, count: int) -> tuple[MeasurementBlock, ...]:
    blocks: list[MeasurementBlock] = []
    seen: set[int] = set()
    for n in range(count):
        at = r.pos
        index = r.uint(1, f"block[{n}].index")
        if index in seen or not 1 <= index <= 0xFE:
            raise GpuReportFormatError(f"block[{n}].index", at, f"index {index} reused or reserved")
        seen.add(index)
        r.expect(_DMTF_SPECIFICATION, f"block[{n}].specification", "DMTF measurement spec")
        size = r.uint(2, f"block[{n}].size")
        body = _Reader(r.data, r.pos, r.pos + size)
        r.take(size, f"block[{n}].measurement")
        value_type = body.uint(1, f"block[{n}].value_type")
        value_size = body.uint(2, f"block[{n}].value_size")
        value = body.take(value_size, f"block[{n}].value")
        if body.pos != body.end:
            raise GpuReportFormatError(f"block[{n}].value", body.pos, "value shorter than block")
        blocks.append(MeasurementBlock(index, value_type, value))
    if r.pos != r.end:
        raise GpuReportFormatError("response.measurement_record", r.pos, "bytes after last block")
    return tuple(blocks)


def _opaque(r: _Reader) -> OpaqueData:
    fields: list[OpaqueField] = []
    offsets: dict[int, int] = {}
    while r.pos < r.end:
        at = r.pos
        field_id = r.uint(2, "opaque.type")
        value = r.take(r.uint(2, "opaque.size"), f"opaque[{field_id}].value")
        if field_id in offsets:
            raise GpuReportFormatError(f"opaque[{field_id}]", at, "field appears twice")
        offsets[field_id] = at
        fields.append(OpaqueField(field_id, value))
    return _Opaque(tuple(fields), offsets, r.end).decode()


class _Opaque:
    """Decodes the fields a verifier needs; errors point at the field's type word."""

    def __init__(self, fields: tuple[OpaqueField, ...], offsets: dict[int, int], end: int) -> None:
        self.fields = fields
        self.values = {f.field_id: f.value for f in fields}
        self.offsets = offsets
        self.end = end

    def decode(self) -> OpaqueData:
        fwid = self.required(OpaqueFieldId.FWID)
        if len(fwid) != 48:
            self.fail(OpaqueFieldId.FWID, f"FWID must be 48 bytes (SHA-384), got {len(fwid)}")
        counts = self.values.get(OpaqueFieldId.MSRSCNT, b"")
        if len(counts) % 4:
            self.fail(OpaqueFieldId.MSRSCNT, "measurement counts are not 4-byte integers")
        return OpaqueData(
            fields=self.fields,
            driver_version=self.text(_DRIVER, self.required(_DRIVER)),
            vbios_version=self.vbios(self.required(OpaqueFieldId.VBIOS_VERSION)),
            fwid=fwid,
            project=self.optional_text(OpaqueFieldId.PROJECT),
            project_sku=self.optional_text(OpaqueFieldId.PROJECT_SKU),
            chip_sku=self.optional_text(OpaqueFieldId.CHIP_SKU),
            chip_sku_mod=self.optional_text(OpaqueFieldId.CHIP_SKU_MOD),
            measurement_counts=tuple(
                int.from_bytes(counts[i : i + 4], "little") for i in range(0, len(counts), 4)
            ),
            nvdec0_enabled=self.nvdec0(),
            protected_pcie_status=self.byte(OpaqueFieldId.PROTECTED_PCIE_STATUS),
            feature=self.feature(),
        )

    def fail(self, field_id: OpaqueFieldId, problem: str) -> NoReturn:
        raise GpuReportFormatError(
            f"opaque.{field_id.name.lower()}", self.offsets.get(field_id, self.end), problem
        )

    def required(self, field_id: OpaqueFieldId) -> bytes:
        if field_id not in self.values:
            self.fail(field_id, "required field is missing")
        return self.values[field_id]

    def text(self, field_id: OpaqueFieldId, raw: bytes) -> str:
        """A NUL-padded printable ASCII string (versions, SKUs, project)."""
        text = raw.rstrip(b"\x00")
        if not text.isascii() or not text.decode().isprintable():
            self.fail(field_id, "not a NUL-padded ASCII string")
        return text.decode()

    def optional_text(self, field_id: OpaqueFieldId) -> str | None:
        raw = self.values.get(field_id)
        return None if raw is None else self.text(field_id, raw)

    def vbios(self, raw: bytes) -> str:
        """`00 9f 00 96 01 00 00 00` -> `96.00.9f.00.01`: the first half reversed, then the
        first byte of the second half (NVIDIA's colloquial VBIOS version)."""
        if len(raw) < 2 or len(raw) % 2:
            self.fail(OpaqueFieldId.VBIOS_VERSION, f"{len(raw)} bytes is not a VBIOS version")
        half = len(raw) // 2
        return ".".join(f"{b:02x}" for b in (*reversed(raw[:half]), raw[half]))

    def byte(self, field_id: OpaqueFieldId) -> int | None:
        raw = self.values.get(field_id)
        if raw is None:
            return None
        if len(raw) != 1:
            self.fail(field_id, f"expected 1 byte, got {len(raw)}")
        return raw[0]

    def nvdec0(self) -> bool | None:
        status = self.byte(OpaqueFieldId.NVDEC0_STATUS)
        if status not in (None, _NVDEC_ENABLED, _NVDEC_DISABLED):
            self.fail(OpaqueFieldId.NVDEC0_STATUS, f"unknown status 0x{status:02x}")
        return None if status is None else status == _NVDEC_ENABLED

    def feature(self) -> str | None:
        raw = self.values.get(OpaqueFieldId.FEATURE_FLAG)
        if raw is None:
            return None
        value = int.from_bytes(raw, "little")
        if len(raw) > 8 or value not in _FEATURES:
            self.fail(OpaqueFieldId.FEATURE_FLAG, f"unknown feature flag {raw.hex()}")
        return _FEATURES[value]
