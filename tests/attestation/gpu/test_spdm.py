"""Parsing NVIDIA attestation reports (SPDM 1.1 GET_MEASUREMENTS request + response)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import AttestationError
from attestation.gpu import GpuReportFormatError, OpaqueFieldId, parse_gpu_report
from attestation.gpu.spdm import REQUEST_SIZE, SIGNATURE_SIZE
from tests.attestation.gpu.samples import (
    COCO_REPORT_DATA,
    REPORT_NONCE,
    claims,
    coco_report,
    report,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RESPONSE_OPAQUE_LENGTH = REQUEST_SIZE + 8 + 64 * 55 + 32  # offset of OpaqueLength in the sample


def test_sample_request_carries_the_readme_nonce() -> None:
    parsed = parse_gpu_report(report())
    request = parsed.request
    assert (request.version, request.attributes, request.operation) == (0x11, 0x01, 0xFF)
    assert parsed.nonce == REPORT_NONCE
    assert parsed.response.responder_nonce != REPORT_NONCE


def test_parser_extracts_what_trustee_claims() -> None:
    expected = claims()
    config = expected["config"]
    parsed = parse_gpu_report(report())
    opaque = parsed.response.opaque
    assert opaque.driver_version == config["driver_version"] == "550.90.07"
    assert opaque.vbios_version == config["vbios_version"] == "96.00.9f.00.01"
    assert opaque.fwid.hex() == config["fwid"]
    assert (opaque.project, opaque.project_sku) == (config["project"], config["project_sku"])
    assert (opaque.chip_sku, opaque.chip_sku_mod) == (config["chip_sku"], config["chip_sku_mod"])
    for name, field in (
        ("board_id", OpaqueFieldId.BOARD_ID),
        ("gpu_info", OpaqueFieldId.GPU_INFO),
        ("cpr_info", OpaqueFieldId.CPRINFO),
        ("project_sku_mod", OpaqueFieldId.PROJECT_SKU_MOD),
    ):
        assert (opaque.raw(field) or b"").hex() == config[name]
    counts = {str(i): n for i, n in enumerate(opaque.measurement_counts, start=1)}
    assert counts == config["measurement_count"]
    measurements = {str(i): v.hex() for i, v in parsed.measurements.items()}
    assert measurements == expected["measurements"]


def test_sample_blocks_are_64_dmtf_sha384_values_and_nvdec0_is_disabled() -> None:
    response = parse_gpu_report(report()).response
    assert [b.index for b in response.blocks] == list(range(1, 65))
    assert {(b.value_type, len(b.value)) for b in response.blocks} == {(0x01, 48)}
    assert response.opaque.nvdec0_enabled is False  # 0x55, shown as "U" in trustee's claims
    assert response.opaque.feature is None
    assert len(response.signature) == SIGNATURE_SIZE


def test_coco_report_nonce_is_the_first_32_bytes_of_its_report_data() -> None:
    parsed = parse_gpu_report(coco_report())
    assert parsed.nonce == COCO_REPORT_DATA[:32]
    assert parsed.response.opaque.driver_version == "580.95.05"
    assert parsed.response.opaque.feature == "SPT"


def test_zero_padding_after_the_signature_is_not_signed_data() -> None:
    raw = coco_report()
    assert raw.endswith(b"\x00")
    assert len(parse_gpu_report(raw).signed) == len(raw) - 1 - SIGNATURE_SIZE
    assert parse_gpu_report(raw + bytes(7)).signed == parse_gpu_report(raw).signed


def test_rejects_non_zero_bytes_after_the_signature() -> None:
    raw = report()
    with pytest.raises(GpuReportFormatError) as err:
        parse_gpu_report(raw + b"\x00\x01")
    assert (err.value.field, err.value.offset) == ("trailing data", len(raw))


@pytest.mark.parametrize("cut", [0, 3, 20, REQUEST_SIZE, REQUEST_SIZE + 7, 200, 4116])
def test_truncated_report_is_a_format_error_with_its_offset(cut: int) -> None:
    with pytest.raises(GpuReportFormatError) as err:
        parse_gpu_report(report()[:cut])
    assert err.value.code == "malformed_gpu_report"
    assert err.value.offset <= cut
    assert "truncated" in err.value.problem


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [
        (0, 0x12, "request.version"),
        (1, 0x81, "request.code"),
        (2, 0x00, "request.param1"),
        (REQUEST_SIZE, 0x10, "response.version"),
        (REQUEST_SIZE + 1, 0x61, "response.code"),
        (REQUEST_SIZE + 8, 0x00, "block[0].index"),
        (REQUEST_SIZE + 9, 0x02, "block[0].specification"),
    ],
)
def test_rejects_wrong_header_fields(offset: int, value: int, field: str) -> None:
    raw = bytearray(report())
    raw[offset] = value
    with pytest.raises(GpuReportFormatError) as err:
        parse_gpu_report(bytes(raw))
    assert (err.value.field, err.value.offset) == (field, offset)


def test_length_fields_are_trusted_over_the_buffer_size() -> None:
    raw = bytearray(report())
    raw[RESPONSE_OPAQUE_LENGTH : RESPONSE_OPAQUE_LENGTH + 2] = (0xFFFF).to_bytes(2, "little")
    with pytest.raises(GpuReportFormatError) as err:
        parse_gpu_report(bytes(raw))
    assert err.value.field == "response.opaque_data"


def _opaque_offset(raw: bytes, field_id: int) -> int:
    """Offset of `field_id`'s type word in the sample's opaque data."""
    pos = RESPONSE_OPAQUE_LENGTH + 2
    while int.from_bytes(raw[pos : pos + 2], "little") != field_id:
        pos += 4 + int.from_bytes(raw[pos + 2 : pos + 4], "little")
    return pos


def test_rejects_an_opaque_field_given_twice() -> None:
    raw = bytearray(report())
    at = _opaque_offset(raw, OpaqueFieldId.CHIP_SKU_MOD)
    raw[at : at + 2] = int(OpaqueFieldId.CHIP_SKU).to_bytes(2, "little")
    with pytest.raises(GpuReportFormatError) as err:
        parse_gpu_report(bytes(raw))
    assert (err.value.field, err.value.offset) == (f"opaque[{OpaqueFieldId.CHIP_SKU}]", at)


@pytest.mark.parametrize(
    "field", [OpaqueFieldId.DRIVER_VERSION, OpaqueFieldId.VBIOS_VERSION, OpaqueFieldId.FWID]
)
def test_driver_vbios_and_fwid_are_required(field: OpaqueFieldId) -> None:
    raw = bytearray(report())
    at = _opaque_offset(raw, field)
    raw[at : at + 2] = (0x7777).to_bytes(2, "little")  # an unknown field id instead
    with pytest.raises(GpuReportFormatError, match="required field is missing"):
        parse_gpu_report(bytes(raw))


def test_driver_version_must_be_ascii() -> None:
    raw = bytearray(report())
    at = _opaque_offset(raw, OpaqueFieldId.DRIVER_VERSION)
    raw[at + 4] = 0xFF
    with pytest.raises(GpuReportFormatError) as err:
        parse_gpu_report(bytes(raw))
    assert (err.value.field, err.value.offset) == ("opaque.driver_version", at)


def test_unknown_nvdec0_status_is_rejected() -> None:
    raw = bytearray(report())
    at = _opaque_offset(raw, OpaqueFieldId.NVDEC0_STATUS)
    raw[at + 4] = 0x01
    with pytest.raises(GpuReportFormatError, match="unknown status 0x01"):
        parse_gpu_report(bytes(raw))


def test_format_errors_are_attestation_errors_and_value_errors() -> None:
    with pytest.raises(AttestationError):
        parse_gpu_report(b"")
    with pytest.raises(ValueError, match=r"request\.version"):
        parse_gpu_report(b"\x10")


@FUZZ
@given(st.binary(max_size=600))
def test_parser_raises_only_typed_errors_on_garbage(data: bytes) -> None:
    with contextlib.suppress(GpuReportFormatError):
        parse_gpu_report(b"\x11\xe0\x01\xff" + data)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 4130), st.integers(0, 255), st.sampled_from(("set", "cut"))),
        min_size=1,
        max_size=4,
    )
)
def test_parser_raises_only_typed_errors_on_mutated_samples(
    edits: list[tuple[int, int, str]],
) -> None:
    raw = bytearray(report())
    for offset, value, kind in edits:
        if kind == "cut":
            del raw[offset % (len(raw) + 1) :]
        elif raw:
            raw[offset % len(raw)] = value
    try:
        parsed = parse_gpu_report(bytes(raw))
    except GpuReportFormatError:
        return
    assert len(parsed.request.nonce) == 32
