"""Golden measurements: RIMs supplied as collateral, compared with the real sample's values."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from attestation.gpu import (
    GPU_CHECKS,
    GpuMeasurementError,
    RimFormatError,
    RimSet,
    nvidia_device_root,
    parse_gpu_report,
    parse_rim,
    verify_gpu_report,
)
from attestation.gpu.rim import compare_with_rims
from tests.attestation.gpu.rim_xml import rim_xml
from tests.attestation.gpu.samples import NOW, REPORT_NONCE, chain, report

SAMPLE = parse_gpu_report(report())
DRIVER, VBIOS = "550.90.07", "96.00.9f.00.01"
VBIOS_BLOCKS = range(1, 21)  # SPDM indices; the RIMs count from 0
DRIVER_BLOCKS = range(21, 65)


def golden(blocks: range, **override: bytes) -> dict[int, list[bytes]]:
    values = {i - 1: [SAMPLE.measurements[i]] for i in blocks}
    for spdm_index, value in override.items():
        values[int(spdm_index.removeprefix("b")) - 1] = [value]
    return values


def rims(driver: bytes | None = None, vbios: bytes | None = None) -> RimSet:
    return RimSet.of(
        [
            parse_rim(driver or rim_xml(DRIVER, golden(DRIVER_BLOCKS)), "driver.swidtag"),
            parse_rim(vbios or rim_xml(VBIOS, golden(VBIOS_BLOCKS)), "vbios.swidtag"),
        ]
    )


def test_synthesised_rims_matching_the_sample_pass() -> None:
    result = compare_with_rims(SAMPLE, rims(), "GH100")
    assert result.skipped == (36,)  # RIM index 35 is skipped: the sample's NVDEC0 is disabled
    assert result.matched == tuple(i for i in range(1, 65) if i != 36)
    assert not result.signatures_verified


def test_a_differing_measurement_is_rejected_and_named() -> None:
    driver = rim_xml(DRIVER, golden(DRIVER_BLOCKS, b30=bytes(48)))
    with pytest.raises(GpuMeasurementError) as err:
        compare_with_rims(SAMPLE, rims(driver=driver), "GH100")
    assert err.value.check == "rim.measurements"
    assert "[30]" in err.value.reason


def test_any_alternative_matches() -> None:
    values = golden(VBIOS_BLOCKS)
    values[4] = [bytes(48), SAMPLE.measurements[5]]
    compare_with_rims(SAMPLE, rims(vbios=rim_xml(VBIOS, values)), "GH100")


def test_index_35_is_not_compared_while_nvdec0_is_disabled() -> None:
    driver = rim_xml(DRIVER, golden(DRIVER_BLOCKS, b36=bytes(48)))
    assert compare_with_rims(SAMPLE, rims(driver=driver), "GH100").skipped == (36,)


def test_inactive_entries_are_not_compared() -> None:
    values = golden(VBIOS_BLOCKS)
    del values[7]
    vbios = rim_xml(VBIOS, values, inactive=[7])
    assert 8 not in compare_with_rims(SAMPLE, rims(vbios=vbios), "GH100").matched


def test_a_measurement_missing_from_the_report_is_a_mismatch() -> None:
    driver = rim_xml(DRIVER, {**golden(DRIVER_BLOCKS), 99: [bytes(48)]})
    with pytest.raises(GpuMeasurementError, match=r"\[100\]"):
        compare_with_rims(SAMPLE, rims(driver=driver), "GH100")


def test_missing_driver_rim_is_rejected() -> None:
    other = rim_xml("535.104.05", golden(DRIVER_BLOCKS))
    with pytest.raises(GpuMeasurementError, match=r"no RIM for GH100 driver 550\.90\.07"):
        compare_with_rims(SAMPLE, rims(driver=other), "GH100")


def test_rims_for_another_product_do_not_apply() -> None:
    with pytest.raises(GpuMeasurementError, match="no RIM for GB100"):
        compare_with_rims(SAMPLE, rims(), "GB100")


def test_driver_and_vbios_rims_must_not_claim_the_same_index() -> None:
    vbios = rim_xml(VBIOS, golden(range(1, 22)))
    with pytest.raises(GpuMeasurementError, match="both measure RIM index 20"):
        compare_with_rims(SAMPLE, rims(vbios=vbios), "GH100")


def test_verification_with_rims_records_the_comparison() -> None:
    verified = verify_gpu_report(
        report(),
        chain(1),
        nonce=REPORT_NONCE,
        now=NOW,
        trust_anchor=nvidia_device_root(),
        rims=rims(),
    )
    assert verified.rim is not None and verified.rim.driver_rim == "synthesised"
    assert verified.checks == tuple(name for name, _ in GPU_CHECKS)


def test_verification_fails_on_a_mismatching_rim() -> None:
    vbios = rim_xml(VBIOS, golden(VBIOS_BLOCKS, b2=bytes(48)))
    with pytest.raises(GpuMeasurementError):
        verify_gpu_report(
            report(),
            chain(1),
            nonce=REPORT_NONCE,
            now=NOW,
            trust_anchor=nvidia_device_root(),
            rims=rims(vbios=vbios),
        )


def test_rim_versions_compare_case_insensitively() -> None:
    rim = parse_rim(rim_xml(VBIOS, golden(VBIOS_BLOCKS)))
    assert rim.version == VBIOS and rim.product == "GH100"
    assert RimSet.of([rim]).find("GH100", VBIOS.upper()) == rim


def test_rim_service_json_envelope_is_unwrapped() -> None:
    xml = rim_xml(DRIVER, golden(DRIVER_BLOCKS))
    envelope = json.dumps(
        {"id": "NV_GPU_DRIVER_GH100_550.90.07", "rim": base64.b64encode(xml).decode()}
    ).encode()
    assert parse_rim(envelope) == parse_rim(xml)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>', "DTD"),
        (b"<SoftwareIdentity", "not XML"),
        (b"<SoftwareIdentity/>", "Meta and Payload"),
        (b'{"rim": "%%%"}', "envelope"),
        (rim_xml(DRIVER, {}), "no measurements"),
        (rim_xml(DRIVER, {1: [bytes(47)]}), "not 48 bytes"),
        (rim_xml(DRIVER, {1: [bytes(48)]}).replace(b'index="1"', b'index="x"'), "measurement"),
        (rim_xml(DRIVER, {1: [bytes(48)]}).replace(b'active="True"', b'active="yes"'), "active"),
    ],
)
def test_malformed_rims_are_typed_errors(document: bytes, problem: str) -> None:
    with pytest.raises(RimFormatError, match=problem):
        parse_rim(document)


def test_rims_load_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "driver.swidtag").write_bytes(rim_xml(DRIVER, golden(DRIVER_BLOCKS)))
    xml = rim_xml(VBIOS, golden(VBIOS_BLOCKS))
    (tmp_path / "vbios.json").write_text(json.dumps({"rim": base64.b64encode(xml).decode()}))
    (tmp_path / "README.md").write_text("not a RIM")
    loaded = RimSet.from_directory(tmp_path)
    assert sorted(r.source for r in loaded.rims) == ["driver.swidtag", "vbios.json"]
    compare_with_rims(SAMPLE, loaded, "GH100")


def test_two_rims_for_one_version_are_ambiguous(tmp_path: Path) -> None:
    for name in ("a.xml", "b.xml"):
        (tmp_path / name).write_bytes(rim_xml(DRIVER, golden(DRIVER_BLOCKS)))
    with pytest.raises(RimFormatError, match="two RIMs"):
        RimSet.from_directory(tmp_path)


def test_missing_directory_is_a_rim_error(tmp_path: Path) -> None:
    with pytest.raises(RimFormatError, match="cannot read RIMs"):
        RimSet.from_directory(tmp_path / "absent")
