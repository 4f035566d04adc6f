"""The negative set: every way a quote or its collateral can be wrong, each rejected by the
check that owns it (exact error class and `.check`), or by the policy (exact reason prefix).

Corruptions the parser or an early check catches are made on the real samples, verified
under Intel's root. Everything that needs a valid signature over changed bytes is re-signed
under a test PKI by `tests.attestation.forge`; the first tests prove the forge faithful.
Time is always pinned (the sample's `now` or explicit instants), never the real clock.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attestation import (
    BindingError,
    CertificateError,
    Collateral,
    CollateralExpiredError,
    IdentityMismatchError,
    Policy,
    QuoteFormatError,
    QuoteVerifier,
    RevokedError,
    SignatureError,
    TcbError,
    TcbStatus,
    TrustAnchor,
    UnsupportedQuoteError,
    VerificationError,
    VerifiedQuote,
    parse_quote,
    verify_quote,
)
from tests.attestation.forge import REPORT_SIZES, CrlSpec, Evidence, TestPki, forge, sign_raw
from tests.samples import ALIBABA_V5, ALL, GOTDX_V5, SGX_V3, TDX_V4, VERIFYING, Sample

INTEL = TrustAnchor.intel()
FORGEABLE = (SGX_V3, TDX_V4, GOTDX_V5)
TDX = (TDX_V4, GOTDX_V5)
WIDE: tuple[datetime, datetime] = (
    datetime(2018, 1, 1, tzinfo=UTC),
    datetime(2049, 1, 1, tzinfo=UTC),
)
SECOND = timedelta(seconds=1)
Json = dict[str, Any]


def _name(sample: Sample) -> str:
    return sample.quote_file.split("_quote")[0]


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return TestPki()


def _forge(sample: Sample, pki: TestPki, **changes: Any) -> Evidence:
    return forge(sample.quote, sample.collateral, pki, **changes)


def _verify(evidence: Evidence, pki: TestPki, now: datetime) -> VerifiedQuote:
    return verify_quote(evidence.quote, evidence.collateral, now=now, trust_anchor=pki.anchor)


def _rejects(
    error: type[VerificationError],
    check: str,
    quote: bytes,
    collateral: Collateral,
    now: datetime,
    anchor: TrustAnchor = INTEL,
) -> VerificationError:
    """Verification fails with exactly `error` at `check`; returns the error for more asserts."""
    with pytest.raises(error) as exc:
        verify_quote(quote, collateral, now=now, trust_anchor=anchor)
    assert type(exc.value) is error, exc.value
    assert exc.value.check == check, exc.value
    return exc.value


def _real_rejects(
    error: type[VerificationError], check: str, sample: Sample, quote: bytes
) -> VerificationError:
    """`quote` (a changed real sample) fails with the sample's own collateral under Intel."""
    return _rejects(error, check, quote, sample.collateral, sample.now)


def _ids(value: object) -> str:
    return _name(value) if isinstance(value, Sample) else str(value)


def _forged_rejects(
    error: type[VerificationError],
    check: str,
    sample: Sample,
    pki: TestPki,
    now: datetime | None = None,
    **changes: Any,
) -> VerificationError:
    evidence = _forge(sample, pki, **changes)
    return _rejects(
        error, check, evidence.quote, evidence.collateral, now or sample.now, pki.anchor
    )


def _format_error(quote: bytes, sample: Sample) -> QuoteFormatError:
    with pytest.raises(QuoteFormatError) as exc:
        verify_quote(quote, sample.collateral, now=sample.now, trust_anchor=INTEL)
    return exc.value


def _outcome(
    quote: bytes, collateral: Collateral, now: datetime, verifier: QuoteVerifier
) -> tuple[object, ...]:
    """What verification says, comparable across evidence: status and advisories, or the
    failing check."""
    try:
        verified = verifier.verify(quote, collateral, now=now)
    except VerificationError as exc:
        return (type(exc), exc.check)
    return (verified.tcb_status, verified.advisory_ids)


def _patched(raw: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(raw)
    out[offset : offset + len(value)] = value
    return bytes(out)


def _flipped(raw: bytes | bytearray, offset: int) -> bytes:
    out = bytearray(raw)
    out[offset] ^= 0x01
    return bytes(out)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Absolute offsets of a quote's fields, from its own length fields."""

    body: int
    body_end: int
    signature_data_len: int
    attestation_key: int
    outer_certification: int | None
    qe_report: int
    qe_report_signature: int
    qe_auth_data_len: int
    qe_auth_data: int
    pck_chain_type: int

    @property
    def signature(self) -> int:
        return self.signature_data_len + 4


def _layout(raw: bytes) -> _Layout:
    quote = parse_quote(raw)
    qe_block = quote.signature_data.qe_report_certification
    assert qe_block is not None
    body_end = len(quote.signed_data)
    key = body_end + 4 + 64
    outer = key + 64 if quote.header.version >= 4 else None
    qe_report = key + 64 + (6 if outer is not None else 0)
    auth_len = qe_report + 384 + 64
    return _Layout(
        body=body_end - REPORT_SIZES[quote.body_type],
        body_end=body_end,
        signature_data_len=body_end,
        attestation_key=key,
        outer_certification=outer,
        qe_report=qe_report,
        qe_report_signature=qe_report + 384,
        qe_auth_data_len=auth_len,
        qe_auth_data=auth_len + 2,
        pck_chain_type=auth_len + 2 + len(qe_block.qe_auth_data),
    )


def _set_bits(offset: int, mask: int) -> Callable[[bytearray], None]:
    def edit(report: bytearray) -> None:
        report[offset] |= mask

    return edit


def _level(doc: Json, path: str) -> Json:
    """A TCB level by path: "platform" (the first TCB info level), "qe" (the first QE identity
    level) or "module" (the first level of the TDX_01 module identity)."""
    if path == "module":
        identity = next(m for m in doc["tdxModuleIdentities"] if m["id"] == "TDX_01")
        return identity["tcbLevels"][0]  # type: ignore[no-any-return]
    return doc["tcbLevels"][0]  # type: ignore[no-any-return]


def _set_status(path: str, status: str, advisories: tuple[str, ...] = ()) -> Callable[[Json], None]:
    def edit(doc: Json) -> None:
        level = _level(doc, path)
        level["tcbStatus"] = status
        level["advisoryIDs"] = list(advisories)

    return edit


# --- the forge is faithful ---------------------------------------------------------------------


@pytest.mark.parametrize("sample", ALL, ids=_name)
def test_resigned_sample_verifies_under_test_root_exactly_like_the_original(
    sample: Sample, pki: TestPki
) -> None:
    evidence = _forge(sample, pki)
    original = _outcome(sample.quote, sample.collateral, sample.now, QuoteVerifier(INTEL))
    forged = _outcome(evidence.quote, evidence.collateral, sample.now, QuoteVerifier(pki.anchor))
    assert forged == original
    if sample.status is not None:
        assert forged == (sample.status, sample.advisory_ids)
        verified = _verify(evidence, pki, sample.now)
        assert verified.simulated and verified.trust_anchor == "test root"
        assert verified.quote.report == parse_quote(sample.quote).report


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_resigned_sample_is_rejected_under_intel_root(sample: Sample, pki: TestPki) -> None:
    evidence = _forge(sample, pki)
    error = _rejects(
        CertificateError, "collateral.crls", evidence.quote, evidence.collateral, sample.now
    )
    assert "not signed by its issuer" in error.reason


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_original_sample_is_rejected_under_test_root(sample: Sample, pki: TestPki) -> None:
    _rejects(
        CertificateError,
        "collateral.crls",
        sample.quote,
        sample.collateral,
        sample.now,
        pki.anchor,
    )


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_resigned_collateral_with_intel_crls_is_rejected_at_tcb_info_chain(
    sample: Sample, pki: TestPki
) -> None:
    evidence = _forge(sample, pki)
    real = sample.collateral
    collateral = dataclasses.replace(
        evidence.collateral, root_ca_crl=real.root_ca_crl, pck_crl=real.pck_crl
    )
    _rejects(CertificateError, "tcb_info.chain", evidence.quote, collateral, sample.now)


# --- byte flips in the real quotes (no re-signing needed) -------------------------------------


@pytest.mark.parametrize("sample", VERIFYING, ids=_name)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_rejects_flipped_report_body_byte(sample: Sample, where: str) -> None:
    layout = _layout(sample.quote)
    offset = {
        "first": layout.body,
        "middle": (layout.body + layout.body_end) // 2,
        "last": layout.body_end - 1,
    }[where]
    _real_rejects(SignatureError, "quote.signature", sample, _flipped(sample.quote, offset))


@pytest.mark.parametrize("sample", VERIFYING, ids=_name)
def test_rejects_flipped_header_user_data(sample: Sample) -> None:
    _real_rejects(SignatureError, "quote.signature", sample, _flipped(sample.quote, 47))


@pytest.mark.parametrize("sample", VERIFYING, ids=_name)
def test_rejects_flipped_quote_signature(sample: Sample) -> None:
    offset = _layout(sample.quote).signature + 10
    _real_rejects(SignatureError, "quote.signature", sample, _flipped(sample.quote, offset))


@pytest.mark.parametrize("sample", VERIFYING, ids=_name)
@pytest.mark.parametrize("which", ["attestation_key", "qe_auth_data"])
def test_rejects_flipped_attestation_key_or_qe_auth_data(sample: Sample, which: str) -> None:
    offset = getattr(_layout(sample.quote), which) + 5
    _real_rejects(BindingError, "qe_report.binding", sample, _flipped(sample.quote, offset))


@pytest.mark.parametrize("sample", VERIFYING, ids=_name)
@pytest.mark.parametrize("which", ["qe_report", "qe_report_signature"])
def test_rejects_flipped_qe_report_or_its_signature(sample: Sample, which: str) -> None:
    offset = getattr(_layout(sample.quote), which) + 10
    _real_rejects(SignatureError, "qe_report.signature", sample, _flipped(sample.quote, offset))


# --- header ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
@pytest.mark.parametrize("version", [0, 1, 2, 6, 0xFFFF])
def test_rejects_unsupported_quote_version(sample: Sample, version: int) -> None:
    error = _format_error(_patched(sample.quote, 0, struct.pack("<H", version)), sample)
    assert (error.field, error.offset) == ("header.version", 0)


@pytest.mark.parametrize(
    ("sample", "version", "field"),
    [
        (SGX_V3, 4, "signature_data.certification_data.type"),
        (SGX_V3, 5, "body.type"),
        (TDX_V4, 3, "header.tee_type"),
        (TDX_V4, 5, "body.type"),
        (GOTDX_V5, 3, "header.tee_type"),
        (GOTDX_V5, 4, "signature_data"),
    ],
    ids=_ids,
)
def test_rejects_quote_relabelled_as_another_supported_version(
    sample: Sample, version: int, field: str
) -> None:
    error = _format_error(_patched(sample.quote, 0, struct.pack("<H", version)), sample)
    assert error.field == field


@pytest.mark.parametrize(
    ("sample", "tee_type", "field"),
    [
        (SGX_V3, 0x81, "header.tee_type"),
        (TDX_V4, 0x00, "signature_data"),
        (TDX_V4, 0x42, "header.tee_type"),
    ],
    ids=_ids,
)
def test_rejects_tee_type_that_changes_the_layout(
    sample: Sample, tee_type: int, field: str
) -> None:
    error = _format_error(_patched(sample.quote, 4, struct.pack("<I", tee_type)), sample)
    assert error.field == field


@pytest.mark.parametrize("tee_type", [0x00, 0x42, 0x80])
def test_rejects_v5_tee_type_that_contradicts_the_body_type(tee_type: int) -> None:
    quote = _patched(GOTDX_V5.quote, 4, struct.pack("<I", tee_type))
    _real_rejects(UnsupportedQuoteError, "quote.header", GOTDX_V5, quote)


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
@pytest.mark.parametrize("key_type", [0, 1, 3, 4])
def test_rejects_attestation_key_type_other_than_ecdsa_p256(sample: Sample, key_type: int) -> None:
    quote = _patched(sample.quote, 2, struct.pack("<H", key_type))
    error = _real_rejects(UnsupportedQuoteError, "quote.header", sample, quote)
    assert "attestation key type" in error.reason


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_rejects_unknown_qe_vendor_id(sample: Sample) -> None:
    quote = _flipped(sample.quote, 12 + 15)
    error = _real_rejects(UnsupportedQuoteError, "quote.header", sample, quote)
    assert "QE vendor ID" in error.reason


# --- certification data ------------------------------------------------------------------------


@pytest.mark.parametrize("cert_type", [0, 8, 0x00FF, 0xFFFF])
def test_rejects_unknown_outer_certification_data_type(cert_type: int) -> None:
    """Bytes 764-765 of the TDX v4 sample: the outer certification data type (must be 6)."""
    quote = _patched(TDX_V4.quote, 764, struct.pack("<H", cert_type))
    error = _format_error(quote, TDX_V4)
    assert (error.field, error.offset) == ("signature_data.certification_data.type", 764)


@pytest.mark.parametrize("cert_type", [1, 2, 3, 4, 5, 7])
def test_rejects_known_outer_certification_data_type_other_than_qe_report(cert_type: int) -> None:
    quote = _patched(TDX_V4.quote, 764, struct.pack("<H", cert_type))
    _real_rejects(UnsupportedQuoteError, "quote.header", TDX_V4, quote)


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
@pytest.mark.parametrize("cert_type", [0, 6, 8, 0xFFFF])
def test_rejects_unknown_or_nested_qe_report_pck_certification_data_type(
    sample: Sample, cert_type: int
) -> None:
    offset = _layout(sample.quote).pck_chain_type
    error = _format_error(_patched(sample.quote, offset, struct.pack("<H", cert_type)), sample)
    assert error.field.endswith("certification_data.type") and error.offset == offset


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
@pytest.mark.parametrize("cert_type", [1, 2, 3, 4, 7])
def test_rejects_pck_certification_data_other_than_an_embedded_chain(
    sample: Sample, cert_type: int
) -> None:
    offset = _layout(sample.quote).pck_chain_type
    quote = _patched(sample.quote, offset, struct.pack("<H", cert_type))
    _real_rejects(UnsupportedQuoteError, "quote.header", sample, quote)


# --- truncation and length fields --------------------------------------------------------------


@pytest.mark.parametrize("sample", ALL, ids=_name)
def test_every_truncation_is_a_format_error_or_the_whole_quote(sample: Sample) -> None:
    raw = sample.quote
    size = parse_quote(raw).size
    verifier = QuoteVerifier(INTEL)
    whole = _outcome(raw, sample.collateral, sample.now, verifier)
    for length in range(len(raw)):
        prefix = raw[:length]
        if length >= size:
            assert _outcome(prefix, sample.collateral, sample.now, verifier) == whole, length
            continue
        with pytest.raises(QuoteFormatError):
            verifier.verify(prefix, sample.collateral, now=sample.now)


def _length_fields(sample: Sample) -> list[tuple[int, int, str, int]]:
    """(offset, width, field named by the error, offset named by the error) of every length
    field of the sample: a length is only found wrong where the bytes it claims run out."""
    layout = _layout(sample.quote)
    chain_size = layout.pck_chain_type + 2
    fields = [
        (layout.signature_data_len, 4, "signature_data", layout.signature),
        (layout.qe_auth_data_len, 2, "qe_auth_data", layout.qe_auth_data),
        (chain_size, 4, "certification_data.data", chain_size + 4),
    ]
    if layout.outer_certification is not None:
        outer_size = layout.outer_certification + 2
        fields.append((outer_size, 4, "signature_data.certification_data.data", outer_size + 4))
    if parse_quote(sample.quote).header.version == 5:
        fields.append((50, 4, "body.size", 50))
    return fields


@pytest.mark.parametrize(
    ("sample", "offset", "width", "field", "at"),
    [(s, *f) for s in FORGEABLE for f in _length_fields(s)],
    ids=_ids,
)
def test_rejects_huge_length_field(
    sample: Sample, offset: int, width: int, field: str, at: int
) -> None:
    huge = (1 << (8 * width)) - 1
    error = _format_error(_patched(sample.quote, offset, huge.to_bytes(width, "little")), sample)
    assert error.field.endswith(field) and error.offset == at, error


# --- PKI: foreign roots, revocation, certificate validity --------------------------------------


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_rejects_pck_chain_resigned_under_a_foreign_root(sample: Sample, pki: TestPki) -> None:
    error = _forged_rejects(CertificateError, "pck.chain", sample, pki, pck_pki=TestPki())
    assert "does not chain to test root" in error.reason


@pytest.mark.parametrize("body", ["tcb_info", "qe_identity"])
def test_rejects_collateral_signed_under_a_foreign_root(body: str, pki: TestPki) -> None:
    evidence = _forge(TDX_V4, pki)
    foreign = TestPki()
    text = getattr(evidence.collateral, body)
    changes: dict[str, Any] = {
        f"{body}_issuer_chain": foreign.tcb_signing.pem + foreign.root.pem,
        f"{body}_signature": sign_raw(foreign.tcb_signing.key, text.encode()),
    }
    collateral = dataclasses.replace(evidence.collateral, **changes)
    _rejects(CertificateError, f"{body}.chain", evidence.quote, collateral, TDX_V4.now, pki.anchor)


@pytest.mark.parametrize("signer", ["pck_leaf", "pck_ca"])
def test_rejects_tcb_info_signed_by_a_pck_key(signer: str, pki: TestPki) -> None:
    """A platform whose PCK key leaked must not be able to vouch for its own TCB."""
    evidence = _forge(TDX_V4, pki)
    pck_ca = pki.pck_cas["platform"]
    issued, chain = {
        "pck_leaf": (evidence.pck, evidence.pck.pem + pck_ca.pem + pki.root.pem),
        "pck_ca": (pck_ca, pck_ca.pem + pki.root.pem),
    }[signer]
    tcb_info = evidence.collateral.tcb_info.replace('"OutOfDate"', '"UpToDate"')
    collateral = dataclasses.replace(
        evidence.collateral,
        tcb_info=tcb_info,
        tcb_info_issuer_chain=chain,
        tcb_info_signature=sign_raw(issued.key, tcb_info.encode()),
    )
    _rejects(CertificateError, "tcb_info.chain", evidence.quote, collateral, TDX_V4.now, pki.anchor)


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_rejects_pck_certificate_listed_in_the_pck_crl(sample: Sample, pki: TestPki) -> None:
    serial = 0x5EC12E7
    error = _forged_rejects(
        RevokedError,
        "pck.chain",
        sample,
        pki,
        pck_serial=serial,
        pck_crl=CrlSpec(revoked=(1, serial, 2)),
    )
    assert f"{serial:x}" in error.reason


def test_accepts_pck_crl_listing_other_serials(pki: TestPki) -> None:
    evidence = _forge(TDX_V4, pki, pck_serial=0x5EC12E7, pck_crl=CrlSpec(revoked=(0x5EC12E8,)))
    assert _verify(evidence, pki, TDX_V4.now).tcb_status == TcbStatus.UP_TO_DATE


@pytest.mark.parametrize(
    ("revoked", "error", "check"),
    [
        ("pck_ca", RevokedError, "pck.chain"),
        ("tcb_signing", RevokedError, "tcb_info.chain"),
        ("root", RevokedError, "collateral.crls"),
    ],
)
def test_rejects_certificate_listed_in_the_root_ca_crl(
    revoked: str, error: type[VerificationError], check: str, pki: TestPki
) -> None:
    cert = {
        "pck_ca": pki.pck_cas["platform"],
        "tcb_signing": pki.tcb_signing,
        "root": pki.root,
    }[revoked].cert
    root_crl = CrlSpec(revoked=(cert.serial_number,))
    _forged_rejects(error, check, TDX_V4, pki, root_crl=root_crl)


def test_rejects_pck_crl_of_the_other_pck_ca(pki: TestPki) -> None:
    """The SGX sample's leaf comes from the Processor CA; a Platform CA CRL says nothing."""
    evidence = _forge(SGX_V3, pki)
    collateral = dataclasses.replace(
        evidence.collateral, pck_crl=pki.crl(pki.pck_cas["platform"], WIDE)
    )
    error = _rejects(
        CertificateError, "pck.chain", evidence.quote, collateral, SGX_V3.now, pki.anchor
    )
    assert "revocation status unknown" in error.reason


@pytest.mark.parametrize(
    ("crl", "check"), [("pck_crl", "pck.chain"), ("root_ca_crl", "collateral.crls")]
)
def test_rejects_crl_signed_by_a_namesake_of_its_issuer(crl: str, check: str, pki: TestPki) -> None:
    foreign = TestPki()
    issuer = foreign.root if crl == "root_ca_crl" else foreign.pck_cas["platform"]
    evidence = _forge(TDX_V4, pki)
    changes: dict[str, Any] = {crl: foreign.crl(issuer, WIDE)}
    collateral = dataclasses.replace(evidence.collateral, **changes)
    error = _rejects(CertificateError, check, evidence.quote, collateral, TDX_V4.now, pki.anchor)
    assert "not signed by its issuer" in error.reason


@pytest.mark.parametrize("state", ["not yet valid", "expired"])
def test_rejects_pck_certificate_outside_its_validity(state: str, pki: TestPki) -> None:
    now = TDX_V4.now
    window = (now + SECOND, now + timedelta(days=365))
    if state == "expired":
        window = (now - timedelta(days=365), now - SECOND)
    error = _forged_rejects(CertificateError, "pck.chain", TDX_V4, pki, pck_validity=window)
    assert state in error.reason


@pytest.mark.parametrize(
    ("certificate", "check"),
    [("tcb_signing", "tcb_info.chain"), ("pck_ca", "pck.chain"), ("root", "tcb_info.chain")],
)
@pytest.mark.parametrize("state", ["not yet valid", "expired"])
def test_rejects_ca_or_signing_certificate_outside_its_validity(
    certificate: str, check: str, state: str
) -> None:
    now = TDX_V4.now
    window = (now + SECOND, WIDE[1]) if state == "not yet valid" else (WIDE[0], now - SECOND)
    pki = TestPki(**{f"{certificate}_validity": window})
    error = _forged_rejects(CertificateError, check, TDX_V4, pki)
    assert state in error.reason


# --- time windows ------------------------------------------------------------------------------


def _wide_crls() -> dict[str, Any]:
    return {"root_crl": CrlSpec(window=WIDE), "pck_crl": CrlSpec(window=WIDE)}


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
@pytest.mark.parametrize("when", ["before issue", "after next update"])
def test_rejects_tcb_info_outside_its_window(sample: Sample, when: str, pki: TestPki) -> None:
    doc = json.loads(sample.collateral.tcb_info)
    edge = doc["issueDate"] if when == "before issue" else doc["nextUpdate"]
    step = -SECOND if when == "before issue" else SECOND
    now = datetime.fromisoformat(edge) + step
    _forged_rejects(CollateralExpiredError, "tcb_info.window", sample, pki, now=now, **_wide_crls())


@pytest.mark.parametrize("edge", ["issueDate", "nextUpdate"])
def test_accepts_collateral_at_the_edges_of_its_window(edge: str, pki: TestPki) -> None:
    """Windows are closed intervals: issueDate <= now <= nextUpdate."""
    stamp = json.loads(TDX_V4.collateral.tcb_info)[edge]

    def align(doc: Json) -> None:
        doc[edge] = stamp

    evidence = _forge(TDX_V4, pki, edit_qe_identity=align, **_wide_crls())
    verified = _verify(evidence, pki, datetime.fromisoformat(stamp))
    assert verified.tcb_status == TcbStatus.UP_TO_DATE


@pytest.mark.parametrize("when", ["before issue", "after next update"])
def test_rejects_qe_identity_outside_its_window(when: str, pki: TestPki) -> None:
    now = TDX_V4.now
    moved = now + SECOND if when == "before issue" else now - SECOND

    def move(doc: Json) -> None:
        doc["issueDate" if when == "before issue" else "nextUpdate"] = moved.isoformat()

    _forged_rejects(
        CollateralExpiredError, "qe_identity.window", TDX_V4, pki, edit_qe_identity=move
    )


@pytest.mark.parametrize("crl", ["root_crl", "pck_crl"])
@pytest.mark.parametrize("state", ["expired", "not yet valid"])
def test_rejects_crl_outside_its_window(crl: str, state: str, pki: TestPki) -> None:
    now = TDX_V4.now
    window = (now - timedelta(days=30), now - SECOND)
    if state == "not yet valid":
        window = (now + SECOND, now + timedelta(days=30))
    changes: dict[str, Any] = {crl: CrlSpec(window=window)}
    error = _forged_rejects(CollateralExpiredError, "collateral.crls", TDX_V4, pki, **changes)
    assert "CrlExpired" in error.reason


# --- TCB info and QE identity content ----------------------------------------------------------


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
@pytest.mark.parametrize(("key", "value"), [("fmspc", "00906ED50000"), ("pceId", "0100")])
def test_rejects_tcb_info_for_another_platform(
    sample: Sample, key: str, value: str, pki: TestPki
) -> None:
    def other_platform(doc: Json) -> None:
        doc[key] = value

    error = _forged_rejects(TcbError, "tcb.fmspc", sample, pki, edit_tcb_info=other_platform)
    assert "Fmspc mismatch" in error.reason


def _replace_with(other: str) -> Callable[[Json], None]:
    def edit(doc: Json) -> None:
        doc.clear()
        doc.update(json.loads(other))

    return edit


@pytest.mark.parametrize(
    ("sample", "other"), [(TDX_V4, SGX_V3), (SGX_V3, TDX_V4)], ids=["tdx-quote", "sgx-quote"]
)
def test_rejects_tcb_info_of_the_other_tee(sample: Sample, other: Sample, pki: TestPki) -> None:
    edit = _replace_with(other.collateral.tcb_info)
    _forged_rejects(TcbError, "tcb_info.type", sample, pki, edit_tcb_info=edit)


@pytest.mark.parametrize(
    ("sample", "other"), [(TDX_V4, SGX_V3), (SGX_V3, TDX_V4)], ids=["tdx-quote", "sgx-quote"]
)
def test_rejects_qe_identity_of_the_other_tee(sample: Sample, other: Sample, pki: TestPki) -> None:
    edit = _replace_with(other.collateral.qe_identity)
    _forged_rejects(IdentityMismatchError, "qe_identity.type", sample, pki, edit_qe_identity=edit)


@pytest.mark.parametrize("body", ["tcb_info", "qe_identity"])
@pytest.mark.parametrize("resigned", [False, True], ids=["intel", "test-pki"])
def test_rejects_tampered_signed_json(body: str, resigned: bool, pki: TestPki) -> None:
    """The signature covers the received bytes: a changed status or a single added space
    breaks it, under Intel's root and under the test root alike."""
    sample = TDX_V4
    evidence = _forge(sample, pki) if resigned else None
    quote = evidence.quote if evidence else sample.quote
    collateral = evidence.collateral if evidence else sample.collateral
    anchor = pki.anchor if resigned else INTEL
    text = getattr(collateral, body)
    for tampered in (text.replace('"UpToDate"', '"Revoked"', 1), text.replace(",", ", ", 1)):
        assert tampered != text
        changed = dataclasses.replace(collateral, **{body: tampered})
        _rejects(SignatureError, f"{body}.signature", quote, changed, sample.now, anchor)


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("MRSIGNER", _set_bits(128, 0x01)),
        ("ISVPRODID", _set_bits(256, 0x08)),
        ("MISCSELECT", _set_bits(16, 0x01)),
        ("ATTRIBUTES debug", _set_bits(48, 0x02)),
        ("ATTRIBUTES kss", _set_bits(48, 0x80)),
    ],
    ids=["MRSIGNER", "ISVPRODID", "MISCSELECT", "ATTRIBUTES-debug", "ATTRIBUTES-kss"],
)
@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_rejects_qe_that_does_not_match_the_qe_identity(
    sample: Sample, field: str, edit: Callable[[bytearray], None], pki: TestPki
) -> None:
    error = _forged_rejects(
        IdentityMismatchError, "qe_identity.match", sample, pki, edit_qe_report=edit
    )
    assert field.split()[0] in error.reason


@pytest.mark.parametrize(
    "edit", [_set_bits(48, 0x04), _set_bits(56, 0xFF)], ids=["MODE64BIT", "XFRM"]
)
def test_accepts_qe_attribute_bits_outside_the_identity_mask(
    edit: Callable[[bytearray], None], pki: TestPki
) -> None:
    evidence = _forge(TDX_V4, pki, edit_qe_report=edit)
    assert _verify(evidence, pki, TDX_V4.now).tcb_status == TcbStatus.UP_TO_DATE


def test_rejects_qe_below_every_qe_identity_level(pki: TestPki) -> None:
    def raise_levels(doc: Json) -> None:
        for level in doc["tcbLevels"]:
            level["tcb"]["isvsvn"] = 99

    _forged_rejects(TcbError, "tcb.qe", TDX_V4, pki, edit_qe_identity=raise_levels)


def _zero_report_data(report: bytearray) -> None:
    report[320:384] = bytes(64)


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
@pytest.mark.parametrize(
    "unbind", [_zero_report_data, _set_bits(383, 0x01)], ids=["zeroed", "nonzero-tail"]
)
def test_rejects_qe_report_data_that_does_not_bind_the_key(
    sample: Sample, unbind: Callable[[bytearray], None], pki: TestPki
) -> None:
    _forged_rejects(BindingError, "qe_report.binding", sample, pki, edit_qe_report=unbind)


# --- TCB levels and status ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "components"),
    [(SGX_V3, "sgxtcbcomponents"), (TDX_V4, "sgxtcbcomponents"), (TDX_V4, "tdxtcbcomponents")],
    ids=_ids,
)
@pytest.mark.parametrize("count", [0, 15, 17])
def test_rejects_tcb_level_without_sixteen_components(
    sample: Sample, components: str, count: int, pki: TestPki
) -> None:
    def resize(doc: Json) -> None:
        for level in doc["tcbLevels"]:
            level["tcb"][components] = [{"svn": 0}] * count

    _forged_rejects(TcbError, "tcb.platform", sample, pki, edit_tcb_info=resize)


@pytest.mark.parametrize("sample", TDX, ids=_name)
def test_rejects_tdx_tcb_level_without_tdx_components(sample: Sample, pki: TestPki) -> None:
    def drop(doc: Json) -> None:
        for level in doc["tcbLevels"]:
            del level["tcb"]["tdxtcbcomponents"]

    _forged_rejects(TcbError, "tcb.platform", sample, pki, edit_tcb_info=drop)


@pytest.mark.parametrize("sample", FORGEABLE, ids=_name)
def test_rejects_platform_at_a_revoked_tcb_level(sample: Sample, pki: TestPki) -> None:
    def revoke(doc: Json) -> None:
        for level in doc["tcbLevels"]:
            level["tcbStatus"] = "Revoked"

    _forged_rejects(TcbError, "tcb.status", sample, pki, edit_tcb_info=revoke)


def test_rejects_qe_at_a_revoked_qe_identity_level(pki: TestPki) -> None:
    _forged_rejects(
        TcbError, "tcb.status", TDX_V4, pki, edit_qe_identity=_set_status("qe", "Revoked")
    )


def test_rejects_tdx_module_at_a_revoked_level(pki: TestPki) -> None:
    _forged_rejects(
        TcbError, "tcb.status", TDX_V4, pki, edit_tcb_info=_set_status("module", "Revoked")
    )


@pytest.mark.parametrize(
    ("platform", "module", "qe", "merged"),
    [
        ("ConfigurationNeeded", "UpToDate", "OutOfDate", "OutOfDateConfigurationNeeded"),
        (
            "ConfigurationAndSWHardeningNeeded",
            "UpToDate",
            "OutOfDate",
            "OutOfDateConfigurationNeeded",
        ),
        ("SWHardeningNeeded", "UpToDate", "OutOfDate", "OutOfDate"),
        ("UpToDate", "UpToDate", "OutOfDate", "OutOfDate"),
        ("ConfigurationNeeded", "OutOfDate", "UpToDate", "OutOfDateConfigurationNeeded"),
        ("UpToDate", "OutOfDate", "UpToDate", "OutOfDate"),
        ("OutOfDateConfigurationNeeded", "UpToDate", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("SWHardeningNeeded", "UpToDate", "UpToDate", "SWHardeningNeeded"),
        ("ConfigurationNeeded", "UpToDate", "UpToDate", "ConfigurationNeeded"),
    ],
)
def test_merges_platform_module_and_qe_tcb_status(
    platform: str, module: str, qe: str, merged: str, pki: TestPki
) -> None:
    def edit_tcb_info(doc: Json) -> None:
        _set_status("platform", platform, ("INTEL-SA-00001",))(doc)
        _set_status("module", module, ("INTEL-SA-00002", "INTEL-SA-00001"))(doc)

    evidence = _forge(
        TDX_V4,
        pki,
        edit_tcb_info=edit_tcb_info,
        edit_qe_identity=_set_status("qe", qe, ("INTEL-SA-00003",)),
    )
    verified = _verify(evidence, pki, TDX_V4.now)
    assert verified.tcb_status == TcbStatus(merged)
    assert sorted(verified.advisory_ids) == ["INTEL-SA-00001", "INTEL-SA-00002", "INTEL-SA-00003"]


def test_tdx_module_components_are_left_to_the_module_identity(pki: TestPki) -> None:
    """TDX_V4 reports TEE_TCB_SVN 06 01 03 ...: module ISVSVN 6, major version 1 (TDX_01, whose
    ISVSVN 4 level is UpToDate). Intel's TCB level matching compares components 2-15 only."""

    def require_newer_module(doc: Json) -> None:
        doc["tcbLevels"][0]["tcb"]["tdxtcbcomponents"][0]["svn"] = 7

    evidence = _forge(TDX_V4, pki, edit_tcb_info=require_newer_module)
    assert _verify(evidence, pki, TDX_V4.now).tcb_status == TcbStatus.UP_TO_DATE


# --- caching never hides a failure -------------------------------------------------------------


def test_warm_verifier_still_checks_a_changed_qe_report() -> None:
    verifier = QuoteVerifier(INTEL)
    verifier.verify(TDX_V4.quote, TDX_V4.collateral, now=TDX_V4.now)
    quote = _flipped(TDX_V4.quote, _layout(TDX_V4.quote).qe_report + 70)
    with pytest.raises(SignatureError) as exc:
        verifier.verify(quote, TDX_V4.collateral, now=TDX_V4.now)
    assert exc.value.check == "qe_report.signature"


def test_warm_verifier_sees_a_revocation_in_new_collateral(pki: TestPki) -> None:
    serial = 0xC0FFEE
    evidence = _forge(TDX_V4, pki, pck_serial=serial)
    verifier = QuoteVerifier(pki.anchor)
    verifier.verify(evidence.quote, evidence.collateral, now=TDX_V4.now)
    revoking = dataclasses.replace(
        evidence.collateral,
        pck_crl=pki.crl(pki.pck_cas["platform"], WIDE, revoked=(serial,)),
    )
    with pytest.raises(RevokedError) as exc:
        verifier.verify(evidence.quote, revoking, now=TDX_V4.now)
    assert exc.value.check == "pck.chain"


# --- policy ------------------------------------------------------------------------------------


def _rule_names(verified: VerifiedQuote, policy: Policy, now: datetime) -> list[str]:
    decision = policy.evaluate(verified, now=now)
    assert decision.accepted == (not decision.reasons)
    return [reason.split(":", 1)[0] for reason in decision.reasons]


SIMULATED = Policy(allow_simulated=True)
ANY_STATUS = frozenset(TcbStatus) - {TcbStatus.REVOKED}


@pytest.mark.parametrize(
    ("sample", "edit", "rule"),
    [
        (TDX_V4, _set_bits(120, 0x01), "debug"),
        (GOTDX_V5, _set_bits(120, 0x01), "debug"),
        (SGX_V3, _set_bits(48, 0x02), "debug"),
        (GOTDX_V5, _set_bits(600, 0x01), "mrservicetd"),
        (TDX_V4, _set_bits(121, 0x01), "td_attributes"),
        (TDX_V4, _set_bits(123, 0x20), "td_attributes"),
        (TDX_V4, _set_bits(124, 0x01), "td_attributes"),
        (TDX_V4, _set_bits(127, 0x40), "td_attributes"),
    ],
    ids=[
        "debug-td-v4",
        "debug-td-v5",
        "debug-enclave",
        "mrservicetd",
        "reserved-bit-8",
        "reserved-bit-29",
        "reserved-bit-32",
        "reserved-bit-62",
    ],
)
def test_policy_rejects_report_body(
    sample: Sample, edit: Callable[[bytearray], None], rule: str, pki: TestPki
) -> None:
    verified = _verify(_forge(sample, pki, edit_report=edit), pki, sample.now)
    policy = dataclasses.replace(SIMULATED, accepted_tcb_statuses=ANY_STATUS)
    assert _rule_names(verified, policy, sample.now) == [rule]


def test_policy_rejects_td_without_sept_ve_disable(pki: TestPki) -> None:
    def clear(report: bytearray) -> None:
        report[123] &= ~0x10

    verified = _verify(_forge(TDX_V4, pki, edit_report=clear), pki, TDX_V4.now)
    assert _rule_names(verified, SIMULATED, TDX_V4.now) == ["td_attributes"]
    relaxed = dataclasses.replace(SIMULATED, require_sept_ve_disable=False)
    assert _rule_names(verified, relaxed, TDX_V4.now) == []


@pytest.mark.parametrize("bit", [30, 31, 63], ids=["PKS", "KL", "PERFMON"])
def test_policy_accepts_defined_td_attribute_bits(bit: int, pki: TestPki) -> None:
    verified = _verify(
        _forge(TDX_V4, pki, edit_report=_set_bits(120 + bit // 8, 1 << (bit % 8))),
        pki,
        TDX_V4.now,
    )
    assert _rule_names(verified, SIMULATED, TDX_V4.now) == []


def test_policy_rejects_bound_service_td_in_a_real_quote() -> None:
    sample = ALIBABA_V5
    verified = verify_quote(sample.quote, sample.collateral, now=sample.now, trust_anchor=INTEL)
    policy = Policy(accepted_tcb_statuses=ANY_STATUS)
    assert _rule_names(verified, policy, sample.now) == ["mrservicetd"]
    report = verified.quote.report
    pinned = dataclasses.replace(
        policy,
        allowed_mrservicetd=frozenset({report.mr_service_td}),  # type: ignore[union-attr]
    )
    assert _rule_names(verified, pinned, sample.now) == []


def test_policy_rejects_simulated_trust_anchor(pki: TestPki) -> None:
    verified = _verify(_forge(TDX_V4, pki), pki, TDX_V4.now)
    assert _rule_names(verified, Policy(), TDX_V4.now) == ["trust_anchor"]
    decision = SIMULATED.evaluate(verified, now=TDX_V4.now)
    assert decision.accepted and any(r.startswith("allow_simulated") for r in decision.relaxations)


def _real(sample: Sample) -> VerifiedQuote:
    return verify_quote(sample.quote, sample.collateral, now=sample.now, trust_anchor=INTEL)


def _pinning(**rules: Any) -> Policy:
    """A policy with `rules` that takes any TCB status but Revoked (the SGX sample needs
    configuration), so only the pinned rule can object."""
    return Policy(accepted_tcb_statuses=ANY_STATUS, **rules)


@pytest.mark.parametrize(
    ("sample", "policy", "rule"),
    [
        (TDX_V4, _pinning(report_data=bytes(64)), "report_data"),
        (SGX_V3, _pinning(report_data=bytes(64)), "report_data"),
        (TDX_V4, _pinning(mrtd=frozenset()), "mrtd"),
        (TDX_V4, _pinning(mrtd=frozenset({bytes(48)})), "mrtd"),
        (TDX_V4, _pinning(rtmr3=frozenset({b"\x01" * 48})), "rtmr3"),
        (TDX_V4, _pinning(mrenclave=frozenset({bytes(32)})), "mrenclave"),
        (SGX_V3, _pinning(mrenclave=frozenset()), "mrenclave"),
        (SGX_V3, _pinning(mrsigner=frozenset({bytes(32)})), "mrsigner"),
        (SGX_V3, _pinning(mrtd=frozenset({bytes(48)})), "mrtd"),
        (SGX_V3, _pinning(rejected_advisories=frozenset({"INTEL-SA-00615"})), "advisories"),
        (SGX_V3, Policy(), "tcb_status"),
    ],
    ids=[
        "report-data-tdx",
        "report-data-sgx",
        "empty-mrtd",
        "other-mrtd",
        "other-rtmr3",
        "mrenclave-on-tdx",
        "empty-mrenclave",
        "other-mrsigner",
        "mrtd-on-sgx",
        "advisory",
        "tcb-status",
    ],
)
def test_policy_rejects_real_quote(sample: Sample, policy: Policy, rule: str) -> None:
    assert _rule_names(_real(sample), policy, sample.now) == [rule]


def test_policy_accepts_real_quote_pinned_to_its_own_values() -> None:
    verified = _real(TDX_V4)
    report = verified.quote.report
    policy = Policy(
        report_data=report.report_data,
        mrtd=frozenset({report.mr_td}),  # type: ignore[union-attr]
        rtmr3=frozenset({report.rtmr3}),  # type: ignore[union-attr]
    )
    assert _rule_names(verified, policy, TDX_V4.now) == []
