"""Property tests: whatever the bytes, the parser and the verifier answer with a value or a typed
error, never with an `IndexError`, a `struct.error` or a library's internal exception.

* `parse_quote` raises only `QuoteFormatError`, on arbitrary bytes and on mutated samples
  (byte flips, insertions, deletions, truncations, length fields overwritten with huge values);
* `verify_quote` on mutated samples returns a `VerifiedQuote` or raises an `AttestationError`;
* `Collateral.from_json` raises only `CollateralFormatError`, and verification with mutated
  collateral (hex, PEM and signed-JSON fields) only `AttestationError`s.

Crashes found here are kept as explicit regression tests at the end of the file (untyped
errors from certificates and CRLs malformed in a field `cryptography` parses lazily; JSON
nested deeply enough to exhaust the recursion limit).
"""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from attestation import (
    AttestationError,
    Collateral,
    CollateralFormatError,
    Quote,
    QuoteFormatError,
    TrustAnchor,
    VerifiedQuote,
    parse_quote,
    verify_quote,
)
from tests.attestation.quote_layout import quote_layout
from tests.samples import ALL, GOTDX_V5, OUTDATED_V5, SGX_V3, TAPPD_V4, TDX_V4, Sample

INTEL = TrustAnchor.intel()
# Sized for a few seconds per property (parsing takes microseconds, a verification about 1 ms).
PARSE = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VERIFY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GARBAGE = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EDGE_VALUES = (0, 1, 0x7F, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF)


# --- strategies -----------------------------------------------------------------------------


@st.composite
def mutated_quotes(draw: st.DrawFn) -> tuple[Sample, bytes]:
    """A sample and its quote after one to four mutations of random kinds: byte flips,
    insertions, deletions, truncations, and a type / length field overwritten with an edge
    value (0, 0xFFFF_FFFF, ...) or any value of its width."""
    sample = draw(st.sampled_from(ALL))
    quote = bytearray(sample.quote)
    fields = quote_layout(sample.quote).fields
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "field")))
        if not quote:
            break
        pos = draw(st.integers(0, len(quote) - 1))
        if kind == "flip":
            quote[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            quote[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del quote[pos : pos + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del quote[pos:]
        else:
            span = fields[draw(st.sampled_from(sorted(fields)))]
            value = draw(st.sampled_from(EDGE_VALUES) | st.integers(0, 2 ** (8 * len(span)) - 1))
            quote[span.start : span.end] = (value % 2 ** (8 * len(span))).to_bytes(
                len(span), "little"
            )
    return sample, bytes(quote)


@st.composite
def flipped_quotes(draw: st.DrawFn) -> tuple[Sample, bytes]:
    """A sample with one byte changed: most still parse, so verification runs deeper."""
    sample = draw(st.sampled_from(ALL))
    quote = bytearray(sample.quote)
    quote[draw(st.integers(0, len(quote) - 1))] ^= draw(st.integers(1, 255))
    return sample, bytes(quote)


def _header_prefixed() -> st.SearchStrategy[bytes]:
    """Random bytes behind a real header (and v5 body descriptor), to get past the first
    checks more often than uniform bytes do."""
    prefixes = st.sampled_from(ALL).flatmap(lambda s: st.integers(2, 54).map(lambda n: s.quote[:n]))
    return st.tuples(prefixes, st.binary(max_size=6000)).map(lambda t: t[0] + t[1])


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
ALPHABETS = {
    "hex": "0123456789abcdefABCDEF0x \n",
    "pem": string.ascii_letters + string.digits + "+/=-\n \x00",
    "json": string.printable,
}
FIELD_ALPHABET = {
    "root_ca_crl": "hex",
    "pck_crl": "hex",
    "tcb_info_signature": "hex",
    "qe_identity_signature": "hex",
    "pck_crl_issuer_chain": "pem",
    "tcb_info_issuer_chain": "pem",
    "qe_identity_issuer_chain": "pem",
    "tcb_info": "json",
    "qe_identity": "json",
}


@st.composite
def mutated_text(draw: st.DrawFn, text: str, alphabet: str) -> str:
    """`text` with one to three characters replaced, inserted or deleted, or truncated."""
    chars = list(text)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("replace", "insert", "delete", "truncate")))
        if not chars:
            break
        pos = draw(st.integers(0, len(chars) - 1))
        if kind == "replace":
            chars[pos] = draw(st.sampled_from(alphabet))
        elif kind == "insert":
            chars.insert(pos, draw(st.sampled_from(alphabet)))
        elif kind == "delete":
            del chars[pos]
        else:
            del chars[pos:]
    return "".join(chars)


@st.composite
def mutated_signed_json(draw: st.DrawFn, text: str) -> str:
    """A signed JSON body (TCB info / QE identity) with one value anywhere in it replaced by an
    arbitrary JSON value, or one key removed."""
    doc = json.loads(text)
    path: list[Any] = []
    node: Any = doc
    while isinstance(node, dict | list) and node and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    if not path:
        return json.dumps(draw(JSON_VALUES))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(doc, separators=(",", ":"))


@st.composite
def mutated_collateral(draw: st.DrawFn) -> tuple[Sample, str]:
    """A sample and its collateral JSON with one field mutated."""
    sample = draw(st.sampled_from(ALL))
    doc = json.loads(sample.collateral_text)
    field = draw(st.sampled_from(sorted(FIELD_ALPHABET)))
    alphabet = FIELD_ALPHABET[field]
    if alphabet == "json" and draw(st.booleans()):
        doc[field] = draw(mutated_signed_json(doc[field]))
    else:
        doc[field] = draw(mutated_text(doc[field], ALPHABETS[alphabet]))
    return sample, json.dumps(doc)


# --- properties -----------------------------------------------------------------------------


def _parse(raw: bytes) -> None:
    error: QuoteFormatError | None = None
    try:
        quote = parse_quote(raw)
    except QuoteFormatError as exc:
        error = exc
    if error is not None:
        event(f"QuoteFormatError: {error.field}")
        assert 0 <= error.offset <= len(raw)
        return
    event("parsed")
    assert isinstance(quote, Quote)
    assert quote.size <= len(raw)


@PARSE
@given(st.binary(max_size=6000) | _header_prefixed())
def test_parse_quote_raises_only_quote_format_error_on_arbitrary_bytes(raw: bytes) -> None:
    _parse(raw)


@PARSE
@given(mutated_quotes())
def test_parse_quote_raises_only_quote_format_error_on_mutated_samples(
    case: tuple[Sample, bytes],
) -> None:
    _parse(case[1])


def _verify(quote: bytes, collateral: Collateral, sample: Sample) -> None:
    try:
        verified = verify_quote(quote, collateral, now=sample.now, trust_anchor=INTEL)
    except AttestationError as exc:
        event(f"{type(exc).__name__}: {getattr(exc, 'check', exc.code)}")
        return
    event("verified")
    assert isinstance(verified, VerifiedQuote)


@VERIFY
@given(flipped_quotes() | mutated_quotes())
def test_verify_quote_returns_or_raises_attestation_error_on_mutated_samples(
    case: tuple[Sample, bytes],
) -> None:
    sample, quote = case
    _verify(quote, sample.collateral, sample)


@GARBAGE
@given(
    st.text(max_size=200)
    | st.binary(max_size=200)
    | st.sampled_from(ALL).flatmap(lambda s: mutated_text(s.collateral_text, string.printable))
    | JSON_VALUES.map(json.dumps)
    | st.dictionaries(st.sampled_from(sorted(FIELD_ALPHABET)), JSON_VALUES).map(json.dumps)
)
def test_collateral_from_json_raises_only_collateral_format_error_on_garbage(
    text: str | bytes,
) -> None:
    try:
        collateral = Collateral.from_json(text)
    except CollateralFormatError:
        event("CollateralFormatError")
        return
    event("loaded")
    assert isinstance(collateral, Collateral)


@VERIFY
@given(mutated_collateral())
def test_verify_with_mutated_collateral_raises_only_attestation_errors(
    case: tuple[Sample, str],
) -> None:
    sample, text = case
    try:
        collateral = Collateral.from_json(text)
    except CollateralFormatError:
        event("from_json: CollateralFormatError")
        return
    _verify(sample.quote, collateral, sample)


# --- regression tests for crashes found by the properties above -----------------------------


def _set_byte(sample: Sample, position: int, value: int) -> bytes:
    quote = bytearray(sample.quote)
    quote[position] = value
    return bytes(quote)


def _set_hex_digit(sample: Sample, field: str, position: int, digit: str) -> Collateral:
    doc = json.loads(sample.collateral_text)
    doc[field] = doc[field][:position] + digit + doc[field][position + 1 :]
    return Collateral.from_json(json.dumps(doc))


@pytest.mark.parametrize(
    ("sample", "position", "value"),
    [
        pytest.param(SGX_V3, 1368, 0x6B, id="PCK leaf subject: ValueError in _name"),
        pytest.param(TAPPD_V4, 1697, 0x41, id="PCK leaf subject: TypeError in _name"),
        pytest.param(OUTDATED_V5, 3145, 0x66, id="chain certificate version: InvalidVersion"),
    ],
)
def test_malformed_embedded_certificate_is_a_typed_error(
    sample: Sample, position: int, value: int
) -> None:
    assert any(position in span for span in quote_layout(sample.quote).certificates)
    quote = _set_byte(sample, position, value)
    with pytest.raises(AttestationError):
        verify_quote(quote, sample.collateral, now=sample.now, trust_anchor=INTEL)


@pytest.mark.parametrize(
    ("sample", "field", "position", "digit"),
    [
        pytest.param(SGX_V3, "root_ca_crl", 18, "5", id="root CA CRL version: InvalidVersion"),
        pytest.param(SGX_V3, "pck_crl", 66, "5", id="PCK CRL issuer: ValueError"),
        pytest.param(GOTDX_V5, "root_ca_crl", 223, "3", id="root CA CRL issuer: TypeError"),
    ],
)
def test_malformed_crl_is_a_typed_error(
    sample: Sample, field: str, position: int, digit: str
) -> None:
    collateral = _set_hex_digit(sample, field, position, digit)
    with pytest.raises(AttestationError):
        verify_quote(sample.quote, collateral, now=sample.now, trust_anchor=INTEL)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000])
def test_deeply_nested_collateral_json_is_a_format_error(text: str) -> None:
    """json.loads raises RecursionError, not ValueError, on deep nesting (found by this file)."""
    with pytest.raises(CollateralFormatError):
        Collateral.from_json(text)


@pytest.mark.parametrize("field", ["tcb_info", "qe_identity"])
def test_deeply_nested_signed_body_is_a_typed_error(field: str) -> None:
    doc = json.loads(TDX_V4.collateral_text)
    doc[field] = "[" * 100_000
    collateral = Collateral.from_json(json.dumps(doc))
    with pytest.raises(AttestationError):
        verify_quote(TDX_V4.quote, collateral, now=TDX_V4.now, trust_anchor=INTEL)
