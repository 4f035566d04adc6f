"""NVIDIA's golden measurements: reference integrity manifests (RIMs) supplied as collateral.

A RIM is a TCG/ISO SWID tag (`SoftwareIdentity` XML): `Meta/@colloquialVersion` names the driver
or VBIOS version it describes, `Meta/@product` the GPU (GH100), and each `Payload/Resource`
gives one measurement index (0-based: RIM index i is SPDM measurement block i + 1), whether it
is `active`, its `size` and `alternatives` acceptable SHA-384 values (`Hash0`, `Hash1`, ...).
A GPU report is compared with two RIMs: the driver's (its version is the report's driver
version) and the VBIOS's (the report's VBIOS version); only active indices count, the two RIMs
must not both claim one, and, as NVIDIA's verifier does, index 35 is skipped when NVDEC0 is
disabled.

Trust: RIMs are read from files the caller supplies (a directory; NVIDIA's RIM service JSON
envelope `{"id", "rim": base64}` or the bare XML) and are never fetched at verify time. Their
XML signatures are NOT verified here (XML-DSig with exclusive canonicalisation needs a library
we do not ship), so the directory must be as trusted as a policy file; `RimComparison` says so
in `signatures_verified`. Documents with a DTD are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from attestation.gpu.errors import GpuMeasurementError, RimFormatError
from attestation.gpu.spdm import GpuReport

__all__ = ["GoldenMeasurement", "Rim", "RimComparison", "RimSet", "compare_with_rims", "parse_rim"]

_SWID = "{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}"
_SHA384 = "{http://www.w3.org/2001/04/xmlenc#sha384}"
_RIM_SUFFIXES = (".swidtag", ".xml", ".json")
_NVDEC0_RIM_INDEX = 35


@dataclass(frozen=True, slots=True)
class GoldenMeasurement:
    """One RIM entry; `index` is the RIM's (0-based)."""

    index: int
    name: str
    active: bool
    alternatives: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Rim:
    """A parsed RIM. `version` is lower-case, as the report's versions are."""

    tag_id: str
    product: str
    version: str
    measurements: tuple[GoldenMeasurement, ...]
    source: str


@dataclass(frozen=True, slots=True)
class RimComparison:
    """A passed comparison: which RIMs, which SPDM indices matched and which were skipped."""

    driver_rim: str
    vbios_rim: str
    matched: tuple[int, ...]
    skipped: tuple[int, ...]
    signatures_verified: bool = False


def parse_rim(data: bytes, source: str = "RIM") -> Rim:
    """Parse a RIM (bare SWID XML or the RIM service's JSON envelope); `source` names it in
    errors."""
    xml = _unwrap(data, source)
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise RimFormatError(f"{source}: a RIM must not carry a DTD")
    try:
        root = ET.fromstring(xml)  # noqa: S314 - no DTD (checked above), so no entity expansion
    except ET.ParseError as exc:
        raise RimFormatError(f"{source}: not XML: {exc}") from None
    meta, payload = root.find(f"{_SWID}Meta"), root.find(f"{_SWID}Payload")
    if root.tag != f"{_SWID}SoftwareIdentity" or meta is None or payload is None:
        raise RimFormatError(f"{source}: not a SWID tag with Meta and Payload")
    measurements = tuple(_golden(r, source) for r in payload.iter(f"{_SWID}Resource"))
    indices = [m.index for m in measurements]
    if not measurements or len(set(indices)) != len(indices):
        raise RimFormatError(f"{source}: no measurements, or one index listed twice")
    return Rim(
        tag_id=root.get("tagId", ""),
        product=_attr(meta, "product", source),
        version=_attr(meta, "colloquialVersion", source).lower(),
        measurements=measurements,
        source=source,
    )


def _unwrap(data: bytes, source: str) -> bytes:
    if not data.lstrip().startswith(b"{"):
        return data
    try:
        envelope = json.loads(data)
        return base64.b64decode(envelope["rim"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise RimFormatError(f"{source}: not a RIM service envelope: {exc}") from None


def _attr(element: ET.Element, name: str, source: str) -> str:
    value = element.get(name)
    if not value:
        raise RimFormatError(f"{source}: {element.tag} has no {name}")
    return value


def _golden(resource: ET.Element, source: str) -> GoldenMeasurement:
    where = f"{source}: measurement {resource.get('index')!r}"
    try:
        index, size = int(_attr(resource, "index", source)), int(_attr(resource, "size", source))
        count = int(_attr(resource, "alternatives", source))
        values = tuple(
            bytes.fromhex(_attr(resource, f"{_SHA384}Hash{i}", source)) for i in range(count)
        )
    except ValueError as exc:
        raise RimFormatError(f"{where}: {exc}") from None
    if index < 0 or count < 1 or any(len(v) != size for v in values):
        raise RimFormatError(f"{where}: bad index, no alternatives, or a value not {size} bytes")
    active = _attr(resource, "active", source)
    if active not in ("True", "False"):
        raise RimFormatError(f"{where}: active is {active!r}")
    return GoldenMeasurement(index, resource.get("name", ""), active == "True", values)


@dataclass(frozen=True, slots=True)
class RimSet:
    """The RIMs a verifier was given, at most one per (product, version)."""

    rims: tuple[Rim, ...]

    def __post_init__(self) -> None:
        keys = [(r.product, r.version) for r in self.rims]
        for key in set(keys):
            if keys.count(key) > 1:
                raise RimFormatError(f"two RIMs for {key[0]} version {key[1]}")

    @classmethod
    def of(cls, rims: Iterable[Rim]) -> RimSet:
        return cls(tuple(rims))

    @classmethod
    def from_directory(cls, directory: Path) -> RimSet:
        """Every `*.swidtag`, `*.xml` and `*.json` file in `directory` (not recursive)."""
        try:
            files = sorted(p for p in directory.iterdir() if p.suffix in _RIM_SUFFIXES)
            return cls.of(parse_rim(p.read_bytes(), p.name) for p in files if p.is_file())
        except OSError as exc:
            raise RimFormatError(f"cannot read RIMs from {directory}: {exc}") from None

    def find(self, product: str, version: str) -> Rim | None:
        version = version.lower()
        return next((r for r in self.rims if (r.product, r.version) == (product, version)), None)


def compare_with_rims(report: GpuReport, rims: RimSet, product: str) -> RimComparison:
    """Compare the report's measurements with its driver's and VBIOS's RIMs. Raises
    `GpuMeasurementError` when a RIM is missing, the RIMs conflict, or a value differs."""
    opaque = report.response.opaque
    pair = []
    for kind, version in (("driver", opaque.driver_version), ("VBIOS", opaque.vbios_version)):
        rim = rims.find(product, version)
        if rim is None:
            raise GpuMeasurementError("rim.measurements", f"no RIM for {product} {kind} {version}")
        pair.append(rim)
    driver, vbios = pair
    golden = _merge(driver, vbios)
    runtime = report.measurements
    skip = {_NVDEC0_RIM_INDEX} if opaque.nvdec0_enabled is False else set()
    checked = [i for i in sorted(golden) if i not in skip]
    mismatched = [i + 1 for i in checked if runtime.get(i + 1) not in golden[i].alternatives]
    if mismatched:
        raise GpuMeasurementError(
            "rim.measurements",
            f"measurement blocks {mismatched} differ from RIMs {driver.source}, {vbios.source}",
        )
    skipped = tuple(i + 1 for i in sorted(golden) if i in skip)
    return RimComparison(driver.tag_id, vbios.tag_id, tuple(i + 1 for i in checked), skipped)


def _merge(driver: Rim, vbios: Rim) -> dict[int, GoldenMeasurement]:
    golden = {m.index: m for m in driver.measurements if m.active}
    for m in vbios.measurements:
        if m.active and m.index in golden:
            raise GpuMeasurementError(
                "rim.measurements", f"driver and VBIOS RIMs both measure RIM index {m.index}"
            )
        if m.active:
            golden[m.index] = m
    return golden
