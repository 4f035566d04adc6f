"""Serialise DCAP quote parts: the inverse of `attestation.quote`, in the same layouts.

A TEE that signs its own quotes (the simulated TDX backend) builds them with these; reserved
fields are written as zeros, so `encode(parse(x)) == x` for every well-formed quote whose
reserved bytes are zero (all of Intel's).
"""

from __future__ import annotations

import struct

from attestation.quote import CertificationDataType, QuoteHeader
from attestation.report import SgxReportBody, TdReport10, TdReport15

__all__ = [
    "encode_certification_data",
    "encode_header",
    "encode_qe_report_certification",
    "encode_quote",
    "encode_report",
]


def encode_header(header: QuoteHeader) -> bytes:
    return (
        struct.pack(
            "<HHIHH",
            header.version,
            header.attestation_key_type,
            header.tee_type,
            header.qe_svn,
            header.pce_svn,
        )
        + _sized(header.qe_vendor_id, 16)
        + _sized(header.user_data, 20)
    )


def encode_report(report: SgxReportBody | TdReport10) -> bytes:
    """384 bytes for an SGX report body, 584 for TD report 1.0, 648 for TD report 1.5."""
    if isinstance(report, SgxReportBody):
        return _encode_sgx(report)
    body = b"".join(
        (
            _sized(report.tee_tcb_svn, 16),
            _sized(report.mr_seam, 48),
            _sized(report.mr_signer_seam, 48),
            _sized(report.seam_attributes, 8),
            _sized(report.td_attributes.raw, 8),
            _sized(report.xfam, 8),
            _sized(report.mr_td, 48),
            _sized(report.mr_config_id, 48),
            _sized(report.mr_owner, 48),
            _sized(report.mr_owner_config, 48),
            *(_sized(r, 48) for r in report.rtmrs),
            _sized(report.report_data, 64),
        )
    )
    if isinstance(report, TdReport15):
        body += _sized(report.tee_tcb_svn2, 16) + _sized(report.mr_service_td, 48)
    return body


def _encode_sgx(r: SgxReportBody) -> bytes:
    return b"".join(
        (
            _sized(r.cpu_svn, 16),
            struct.pack("<I", r.misc_select),
            bytes(12),
            _sized(r.isv_ext_prod_id, 16),
            _sized(r.attributes.raw, 16),
            _sized(r.mr_enclave, 32),
            bytes(32),
            _sized(r.mr_signer, 32),
            bytes(32),
            _sized(r.config_id, 64),
            struct.pack("<HHH", r.isv_prod_id, r.isv_svn, r.config_svn),
            bytes(42),
            _sized(r.isv_family_id, 16),
            _sized(r.report_data, 64),
        )
    )


def encode_certification_data(cert_type: int, data: bytes) -> bytes:
    return struct.pack("<HI", cert_type, len(data)) + data


def encode_qe_report_certification(
    qe_report: bytes, qe_report_signature: bytes, qe_auth_data: bytes, inner: bytes
) -> bytes:
    """The QE report block: report, its PCK signature, the QE auth data and the encoded inner
    certification data. It is the payload of certification data type 6 in v4/v5 quotes."""
    return (
        _sized(qe_report, 384)
        + _sized(qe_report_signature, 64)
        + struct.pack("<H", len(qe_auth_data))
        + qe_auth_data
        + inner
    )


def encode_quote(
    signed_data: bytes, signature: bytes, attestation_key: bytes, qe_block: bytes, version: int
) -> bytes:
    """Header + body (`signed_data`), then the signature data of `version`'s layout."""
    if version >= 4:
        qe_block = encode_certification_data(CertificationDataType.QE_REPORT, qe_block)
    signature_data = _sized(signature, 64) + _sized(attestation_key, 64) + qe_block
    return signed_data + struct.pack("<I", len(signature_data)) + signature_data


def _sized(value: bytes, size: int) -> bytes:
    if len(value) != size:
        raise ValueError(f"expected {size} bytes, got {len(value)}")
    return value
