"""The encoders are exact inverses of the parsers on every real sample (what the simulated TEE
relies on to emit byte-compatible quotes and PCK certificates)."""

from __future__ import annotations

import pytest

from attestation import parse_quote
from attestation.pck import SGX_EXTENSIONS_OID, encode_pck_extensions, parse_pck_extensions
from attestation.pki import load_pem_chain
from attestation.quote_encode import (
    encode_certification_data,
    encode_header,
    encode_qe_report_certification,
    encode_quote,
    encode_report,
)
from tests.samples import ALL, Sample


@pytest.mark.parametrize("sample", ALL, ids=lambda s: s.quote_file)
def test_quote_re_encodes_byte_for_byte(sample: Sample) -> None:
    quote = parse_quote(sample.quote)
    sig = quote.signature_data
    qe = sig.qe_report_certification
    assert qe is not None
    assert encode_header(quote.header) == quote.signed_data[:48]
    assert quote.signed_data.endswith(encode_report(quote.report))
    assert encode_report(qe.qe_report) == qe.qe_report_raw
    inner = encode_certification_data(qe.certification_data.type, qe.certification_data.data)
    block = encode_qe_report_certification(
        qe.qe_report_raw, qe.qe_report_signature, qe.qe_auth_data, inner
    )
    encoded = encode_quote(
        quote.signed_data, sig.signature, sig.attestation_key, block, quote.header.version
    )
    assert encoded == sample.quote[: quote.size]


@pytest.mark.parametrize("sample", ALL, ids=lambda s: s.quote_file)
def test_pck_extensions_re_encode_byte_for_byte(sample: Sample) -> None:
    qe = parse_quote(sample.quote).signature_data.qe_report_certification
    assert qe is not None
    leaf = load_pem_chain(qe.certification_data.data, "pck.chain")[0]
    raw = leaf.extensions.get_extension_for_oid(SGX_EXTENSIONS_OID).value.value  # type: ignore[attr-defined]
    assert encode_pck_extensions(parse_pck_extensions(leaf)) == raw


def test_encoders_refuse_wrong_sizes() -> None:
    quote = parse_quote(ALL[1].quote)
    with pytest.raises(ValueError, match="expected 64 bytes"):
        encode_quote(quote.signed_data, b"short", bytes(64), b"", 4)
