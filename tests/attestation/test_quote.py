"""Quote parsing on the real samples: fields, layouts, padding, and the file decoder."""

from __future__ import annotations

import dcap_qvl
import pytest

from attestation import QuoteFormatError, parse_quote
from attestation.quote import CertificationDataType, decode_quote_file
from attestation.report import BodyType, SgxReportBody, TdReport10, TdReport15
from tests.samples import ALIBABA_V5, ALL, GOTDX_V5, SAMPLES, SGX_V3, TDX_V4, Sample, read_quote


def test_parses_sgx_v3_header_and_enclave_report() -> None:
    quote = parse_quote(SGX_V3.quote)
    assert (quote.header.version, quote.header.tee_type, quote.body_type) == (3, 0, BodyType.SGX)
    assert (quote.header.qe_svn, quote.header.pce_svn) == (10, 15)
    assert quote.tee == "sgx"
    report = quote.report
    assert isinstance(report, SgxReportBody)
    assert report.attributes.flags == 0x05  # INIT | MODE64BIT
    assert report.attributes.init and report.attributes.mode64bit and not report.attributes.debug
    assert len(report.mr_enclave) == 32 and len(report.report_data) == 64
    assert quote.size == len(SGX_V3.quote) == 4600


def test_sgx_v3_signature_data_carries_qe_report_and_pem_chain() -> None:
    sig = parse_quote(SGX_V3.quote).signature_data
    assert sig.certification_data.type == CertificationDataType.PCK_CERT_CHAIN
    qe = sig.qe_report_certification
    assert qe is not None and qe.certification_data is sig.certification_data
    assert len(qe.qe_auth_data) == 32
    assert qe.certification_data.data.startswith(b"-----BEGIN CERTIFICATE-----")


def test_parses_tdx_v4_td_report_with_named_attribute_bits() -> None:
    quote = parse_quote(TDX_V4.quote)
    assert (quote.header.version, quote.header.tee_type, quote.body_type) == (
        4,
        0x81,
        BodyType.TD_REPORT10,
    )
    report = quote.report
    assert isinstance(report, TdReport10) and not isinstance(report, TdReport15)
    attrs = report.td_attributes
    assert attrs.raw.hex() == "0000001000000000"
    assert attrs.sept_ve_disable and not attrs.debug and not attrs.reserved_bits_set
    assert len(report.rtmrs) == 4 and all(len(r) == 48 for r in report.rtmrs)


_TD_FIELDS = {
    "mr_config_id": "mr_config_id",
    "mr_owner": "mr_owner",
    "mr_owner_config": "mr_owner_config",
    "mr_seam": "mr_seam",
    "mr_signer_seam": "mr_signer_seam",
    "mr_td": "mr_td",
    "report_data": "report_data",
    "rt_mr0": "rtmr0",
    "rt_mr1": "rtmr1",
    "rt_mr2": "rtmr2",
    "rt_mr3": "rtmr3",
    "seam_attributes": "seam_attributes",
    "tee_tcb_svn": "tee_tcb_svn",
    "xfam": "xfam",
}


@pytest.mark.parametrize("sample", ALL, ids=lambda s: s.quote_file)
def test_fields_agree_with_dcap_qvl_parser(sample: Sample) -> None:
    ours = parse_quote(sample.quote)
    theirs = dcap_qvl.parse_quote(sample.quote)
    header = theirs.header
    assert (ours.header.version, ours.header.tee_type) == (header.version, header.tee_type)
    assert (ours.header.qe_svn, ours.header.pce_svn) == (header.qe_svn, header.pce_svn)
    assert ours.header.qe_vendor_id == bytes(header.qe_vendor_id)
    assert ours.header.user_data == bytes(header.user_data)
    report = ours.report
    if isinstance(report, SgxReportBody):
        for name in ("cpu_svn", "mr_enclave", "mr_signer", "report_data"):
            assert getattr(report, name) == bytes(getattr(theirs.report, name)), name
        assert report.attributes.raw == bytes(theirs.report.attributes)
        return
    for theirs_name, ours_name in _TD_FIELDS.items():
        assert getattr(report, ours_name) == bytes(getattr(theirs.report, theirs_name)), ours_name
    assert report.td_attributes.raw == bytes(theirs.report.td_attributes)
    if isinstance(report, TdReport15):
        assert report.mr_service_td == bytes(theirs.report.mr_service_td)
        assert report.tee_tcb_svn2 == bytes(theirs.report.tee_tcb_svn2)


def test_trailing_padding_is_ignored_and_lengths_come_from_length_fields() -> None:
    quote = parse_quote(TDX_V4.quote)
    assert len(TDX_V4.quote) == 5006 and quote.size == 4936
    assert parse_quote(TDX_V4.quote[:4936]) == quote


def test_v4_and_v5_nest_the_pck_chain_in_qe_report_certification_data() -> None:
    for sample in (TDX_V4, GOTDX_V5):
        sig = parse_quote(sample.quote).signature_data
        assert sig.certification_data.type == CertificationDataType.QE_REPORT
        assert sig.qe_report_certification is not None
        inner = sig.qe_report_certification.certification_data
        assert inner.type == CertificationDataType.PCK_CERT_CHAIN


def test_parses_v5_td_report_15_with_mrservicetd() -> None:
    zero = parse_quote(GOTDX_V5.quote).report
    assert isinstance(zero, TdReport15) and zero.mr_service_td == bytes(48)
    bound = parse_quote(ALIBABA_V5.quote).report
    assert isinstance(bound, TdReport15)
    assert bound.mr_service_td.hex().startswith("383c87d3")
    assert bound.mr_service_td.hex().endswith("a033d")


def test_signed_data_is_header_plus_body() -> None:
    for sample, size in ((SGX_V3, 48 + 384), (TDX_V4, 48 + 584), (GOTDX_V5, 48 + 6 + 648)):
        quote = parse_quote(sample.quote)
        assert quote.signed_data == sample.quote[:size]


def test_rejects_unknown_version_naming_field_and_offset() -> None:
    raw = bytearray(TDX_V4.quote)
    raw[0] = 9
    with pytest.raises(QuoteFormatError) as exc:
        parse_quote(bytes(raw))
    assert (exc.value.field, exc.value.offset, exc.value.code) == (
        "header.version",
        0,
        "malformed_quote",
    )


def test_rejects_huge_signature_data_length() -> None:
    raw = bytearray(TDX_V4.quote)
    raw[632:636] = (0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(QuoteFormatError) as exc:
        parse_quote(bytes(raw))
    assert exc.value.field == "signature_data" and exc.value.offset == 636


def test_rejects_non_bytes() -> None:
    with pytest.raises(QuoteFormatError):
        parse_quote("not bytes")  # type: ignore[arg-type]


def test_decodes_hex_and_binary_quote_files() -> None:
    hex_text = (SAMPLES / "dcapqvl_near_tdx_v4_quote.hex").read_bytes()
    assert decode_quote_file(hex_text) == read_quote("dcapqvl_near_tdx_v4_quote.hex")
    assert decode_quote_file(b"0x" + hex_text.strip() + b"\n") == decode_quote_file(hex_text)
    wrapped = b"\n".join(hex_text.strip()[i : i + 64] for i in range(0, len(hex_text.strip()), 64))
    assert decode_quote_file(wrapped) == decode_quote_file(hex_text)
    assert decode_quote_file(SGX_V3.quote) == SGX_V3.quote
    with pytest.raises(QuoteFormatError):
        decode_quote_file(b"abc")
