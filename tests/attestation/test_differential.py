"""Differential test: our verifier against dcap-qvl 0.7.0 (Phala's Rust verifier), on the real
samples and on a few thousand single-byte mutations of them.

Both must agree on verified / rejected, and where both verify on the TCB status and advisory
IDs. dcap-qvl folds into `verify` some checks that we leave to `Policy` (debug TD / enclave,
reserved TDATTRIBUTES bits, SEPT_VE_DISABLE, a non-zero MRSERVICETD), so "ours verified" means
`verify_quote` returned AND a `Policy` accepting every TCB status but Revoked (all other
defaults) accepted it. Ours rejects by raising an `AttestationError`; dcap-qvl by raising
`ValueError`. Any other exception is a test failure.

Every disagreement was investigated. The ones that are dcap-qvl's are listed, with the reason,
in `DCAP_QVL_DEVIATIONS`; each entry matches only its own mutation region, our exact error and
dcap-qvl's exact result, and must still occur (so the list cannot rot into a blanket skip).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import dcap_qvl
import pytest

from attestation import (
    AttestationError,
    CertificateError,
    Collateral,
    Policy,
    QuoteFormatError,
    QuoteVerifier,
    TcbStatus,
    TrustAnchor,
    UnsupportedQuoteError,
)
from tests.attestation.quote_layout import QuoteLayout, Span, quote_layout
from tests.samples import ALL, TDX_V4, VERIFYING, Sample

SEED = 0xDCA9
PER_SAMPLE = {
    "uniform": 150,
    "signature_data": 120,
    "certification_data": 100,
    "type_and_length_fields": 130,
}
POLICY = Policy(accepted_tcb_statuses=frozenset(TcbStatus) - {TcbStatus.REVOKED})


@dataclass(frozen=True, slots=True)
class Outcome:
    verified: bool
    status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    error: BaseException | None = None
    policy_reasons: tuple[str, ...] = ()

    @property
    def verdict(self) -> tuple[bool, str | None, tuple[str, ...]]:
        return (self.verified, self.status, self.advisory_ids)

    def __str__(self) -> str:
        if self.verified:
            return f"verified {self.status} {list(self.advisory_ids)}"
        if self.policy_reasons:
            return f"rejected by the policy ({'; '.join(self.policy_reasons)})"
        return f"rejected ({type(self.error).__name__}: {self.error})"


class Verifiers:
    """Both verifiers, with collateral loaded once per file: one warm `QuoteVerifier` per
    collateral for ours (its results equal cold ones), a `QuoteCollateralV3` for dcap-qvl."""

    def __init__(self) -> None:
        self._anchor = TrustAnchor.intel()
        self._ours: dict[str, tuple[QuoteVerifier, Collateral]] = {}
        self._theirs: dict[str, dcap_qvl.QuoteCollateralV3] = {}

    def ours(self, sample: Sample, quote: bytes) -> Outcome:
        if sample.collateral_file not in self._ours:
            self._ours[sample.collateral_file] = (QuoteVerifier(self._anchor), sample.collateral)
        verifier, collateral = self._ours[sample.collateral_file]
        try:
            verified = verifier.verify(quote, collateral, now=sample.now)
        except AttestationError as exc:
            return Outcome(False, error=exc)
        decision = POLICY.evaluate(verified, now=sample.now)
        if not decision.accepted:
            return Outcome(False, policy_reasons=decision.reasons)
        return Outcome(True, str(verified.tcb_status), verified.advisory_ids)

    def theirs(self, sample: Sample, quote: bytes) -> Outcome:
        if sample.collateral_file not in self._theirs:
            collateral = dcap_qvl.QuoteCollateralV3.from_json(sample.collateral_text)
            self._theirs[sample.collateral_file] = collateral
        try:
            report = dcap_qvl.verify(quote, self._theirs[sample.collateral_file], sample.at)
        except ValueError as exc:
            return Outcome(False, error=exc)
        return Outcome(True, report.status, tuple(report.advisory_ids))


@cache
def verifiers() -> Verifiers:
    return Verifiers()


@cache
def layout(sample: Sample) -> QuoteLayout:
    return quote_layout(sample.quote)


@dataclass(frozen=True, slots=True)
class Mutation:
    """One byte of a sample quote XOR-ed with a non-zero mask."""

    sample: Sample
    region: str
    position: int
    mask: int

    def apply(self) -> bytes:
        quote = bytearray(self.sample.quote)
        quote[self.position] ^= self.mask
        return bytes(quote)

    def __str__(self) -> str:
        quote = self.sample.quote
        return (
            f"{self.sample.quote_file}[{self.position}] {quote[self.position]:#04x}"
            f"->{quote[self.position] ^ self.mask:#04x} ({self.region}: {where(self)})"
        )


def where(m: Mutation) -> str:
    lay = layout(m.sample)
    named = [name for name, span in lay.fields.items() if m.position in span]
    certs = [f"certificate {i}" for i, span in enumerate(lay.certificates) if m.position in span]
    for name, span in (
        ("padding", lay.padding),
        ("PCK chain", lay.pck_chain),
        ("signature data", lay.signature_data),
    ):
        if m.position in span:
            return ", ".join([*named, *certs, name])
    return ", ".join(named) or "header / body"


def mutations() -> list[Mutation]:
    """Deterministic: `PER_SAMPLE` mutations of every sample, uniform over the quote, in the
    signature data, in the certification data, and in the header type / length fields."""
    rng = random.Random(SEED)
    out = []
    for sample in ALL:
        lay = layout(sample)
        fields = [pos for span in lay.fields.values() for pos in range(span.start, span.end)]
        regions: dict[str, Callable[[], int]] = {
            "uniform": lambda lay=lay: rng.randrange(lay.size),
            "signature_data": lambda lay=lay: _pick(rng, lay.signature_data),
            "certification_data": lambda lay=lay: _pick(rng, lay.certification_data),
            "type_and_length_fields": lambda fields=fields: rng.choice(fields),
        }
        for region, count in PER_SAMPLE.items():
            out += [
                Mutation(sample, region, regions[region](), rng.randrange(1, 256))
                for _ in range(count)
            ]
    return out


def _pick(rng: random.Random, span: Span) -> int:
    return rng.randrange(span.start, span.end)


# --- known dcap-qvl deviations --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownDeviation:
    name: str
    explanation: str
    matches: Callable[[Mutation, Outcome, Outcome], bool]


def _theirs_unchanged(m: Mutation, theirs: Outcome) -> bool:
    """dcap-qvl gave the unmutated sample's own verdict."""
    return theirs.verdict == (True, m.sample.status, m.sample.advisory_ids)


def _outer_type_ignored(m: Mutation, ours: Outcome, theirs: Outcome) -> bool:
    span = layout(m.sample).fields.get("certification_data.type")
    if span is None or m.position not in span:
        return False
    error = ours.error
    rejected_as_unknown = isinstance(error, QuoteFormatError) and (
        error.field == "signature_data.certification_data.type"
    )
    rejected_as_not_qe_report = isinstance(error, UnsupportedQuoteError) and (
        error.check == "quote.header" and "needs type 6" in error.reason
    )
    return (rejected_as_unknown or rejected_as_not_qe_report) and _theirs_unchanged(m, theirs)


def _root_not_parsed(m: Mutation, ours: Outcome, theirs: Outcome) -> bool:
    certificates = layout(m.sample).certificates
    return (
        len(certificates) == 3
        and m.position in certificates[2]
        and isinstance(ours.error, CertificateError)
        and ours.error.check == "pck.chain"
        and "certificate chain is not valid PEM: error parsing asn1 value" in ours.error.reason
        and _theirs_unchanged(m, theirs)
    )


DCAP_QVL_DEVIATIONS = (
    KnownDeviation(
        "outer_certification_type_ignored",
        "dcap-qvl 0.7.0 never checks the type of a v4/v5 quote's outer certification data "
        "(the u16 after the attestation key): it decodes the block as QE report certification "
        "data (type 6) whatever the field says, so a quote whose field says 5, 0x2e or 0xff06 "
        "still verifies. Intel's layout makes type 6 mandatory there; we reject any other.",
        _outer_type_ignored,
    ),
    KnownDeviation(
        "embedded_root_certificate_not_parsed",
        "dcap-qvl hands the embedded chain's CA certificates to webpki as unparsed DER "
        "candidates; path building reaches its own pinned root from the PCK CA and never "
        "parses the chain's third (root) certificate, so a corrupted DER there goes unnoticed. "
        "We parse every certificate of the evidence (`load_pem_x509_certificates`) and reject "
        "malformed evidence. The embedded root is never trusted by either verifier, so this is "
        "strictness, not a trust difference: dropping the root from the chain verifies in both.",
        _root_not_parsed,
    ),
)


def explain(m: Mutation, ours: Outcome, theirs: Outcome) -> str | None:
    """The deviation name for a disagreement dcap-qvl is known to cause, else None."""
    return next((d.name for d in DCAP_QVL_DEVIATIONS if d.matches(m, ours, theirs)), None)


def agree(ours: Outcome, theirs: Outcome) -> bool:
    return ours.verified == theirs.verified and (
        not ours.verified or ours.verdict == theirs.verdict
    )


# --- tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ALL, ids=lambda s: s.quote_file)
def test_samples_get_the_same_verdict_from_both_verifiers(sample: Sample) -> None:
    ours = verifiers().ours(sample, sample.quote)
    theirs = verifiers().theirs(sample, sample.quote)
    assert ours.verdict == theirs.verdict, f"ours: {ours}; dcap-qvl: {theirs}"
    assert ours.verdict[0] == (sample in VERIFYING)
    if sample.dcap_qvl_error:
        assert sample.dcap_qvl_error in str(theirs.error)


def _padding_and_slack() -> Iterator[Any]:
    """Bytes that no length field assigns to anything: after the signature data, and slack
    left inside a length-prefixed block. Both verifiers ignore them."""
    for sample in VERIFYING:
        quote, lay = sample.quote, layout(sample)
        name = sample.quote_file
        yield pytest.param(sample, quote + bytes(16), id=f"{name}: 16 zero bytes appended")
        yield pytest.param(sample, quote + b"\xff" * 16, id=f"{name}: 16 0xff bytes appended")
        at = lay.fields["pck_chain.size"].start
        shrunk = bytearray(quote)
        shrunk[at : at + 4] = (len(lay.pck_chain) - 1).to_bytes(4, "little")
        yield pytest.param(sample, bytes(shrunk), id=f"{name}: chain's NUL left as slack")
    lay = layout(TDX_V4)
    assert len(lay.padding) == 70
    for extra in (1, 70):
        grown = bytearray(TDX_V4.quote)
        at = lay.fields["signature_data_len"].start
        grown[at : at + 4] = (len(lay.signature_data) + extra).to_bytes(4, "little")
        yield pytest.param(
            TDX_V4, bytes(grown), id=f"signature data grown over {extra} padding bytes"
        )
    flipped = bytearray(TDX_V4.quote)
    flipped[lay.padding.start :] = b"\xa5" * len(lay.padding)
    yield pytest.param(TDX_V4, bytes(flipped), id="70 padding bytes overwritten")


@pytest.mark.parametrize(("sample", "quote"), list(_padding_and_slack()))
def test_padding_and_slack_bytes_are_ignored_by_both(sample: Sample, quote: bytes) -> None:
    ours = verifiers().ours(sample, quote)
    theirs = verifiers().theirs(sample, quote)
    assert ours.verdict == theirs.verdict == (True, sample.status, sample.advisory_ids)


def test_dcap_qvl_verifies_a_v4_quote_with_a_corrupted_outer_certification_type() -> None:
    quote = bytearray(TDX_V4.quote)
    assert quote[764:766] == b"\x06\x00"
    quote[764] = 0x2E
    theirs = verifiers().theirs(TDX_V4, bytes(quote))
    ours = verifiers().ours(TDX_V4, bytes(quote))
    assert theirs.verdict == (True, "UpToDate", ())
    assert isinstance(ours.error, QuoteFormatError)
    assert ours.error.field == "signature_data.certification_data.type"


def test_single_byte_mutations_get_the_same_verdict_from_both_verifiers() -> None:
    cases = mutations()
    assert len(cases) >= 2000
    tally: Counter[str] = Counter()
    unexplained = []
    for m in cases:
        quote = m.apply()
        ours = verifiers().ours(m.sample, quote)
        theirs = verifiers().theirs(m.sample, quote)
        if agree(ours, theirs):
            tally["agree: both verified" if ours.verified else "agree: both rejected"] += 1
        elif deviation := explain(m, ours, theirs):
            tally[f"dcap-qvl deviation: {deviation}"] += 1
        else:
            unexplained.append(f"{m}\n    ours: {ours}\n    dcap-qvl: {theirs}")
    print("\n".join(f"{count:5d}  {what}" for what, count in sorted(tally.items())))
    assert not unexplained, f"{len(unexplained)} disagreements:\n" + "\n".join(unexplained)
    for deviation in DCAP_QVL_DEVIATIONS:
        assert tally[f"dcap-qvl deviation: {deviation.name}"], f"{deviation.name} never seen"
