"""HPKE envelopes: round trips, tamper and context binding, malformed input, and interoperability
with `cryptography`'s HPKE used directly and with pyhpke, an independent RFC 9180 implementation.

The interoperability tests build the HPKE `info` by hand from the layout documented in
`enclave.envelope`, so a change of the wire format shows up here and not only in a round trip.
"""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

from enclave.envelope import (
    ENVELOPE_OVERHEAD,
    ENVELOPE_VERSION,
    EnvelopeContext,
    open_request,
    open_response,
    seal_request,
    seal_response,
)
from enclave.errors import EnvelopeError

CONTEXT = EnvelopeContext(agent="embedder", request_id="req-0001", chain_id=31337)
PLAINTEXT = b'{"input": "the quick brown fox"}'
LIBRARY_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
PYHPKE_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def documented_info(direction: str, agent: str, request_id: str, chain_id: int) -> bytes:
    """The HPKE `info`, written from the module docstring's layout."""

    def field(text: str) -> bytes:
        raw = text.encode("utf-8")
        return len(raw).to_bytes(2, "big") + raw

    return (
        b"enclava/envelope/v1"
        + field(direction)
        + field(agent)
        + field(request_id)
        + struct.pack(">Q", chain_id)
    )


def raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def enclave_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def request_envelope(enclave_key: X25519PrivateKey) -> bytes:
    return seal_request(enclave_key.public_key(), PLAINTEXT, CONTEXT)


# Round trips and layout


def test_request_round_trips(enclave_key: X25519PrivateKey, request_envelope: bytes) -> None:
    assert open_request(enclave_key, request_envelope, CONTEXT) == PLAINTEXT


def test_response_round_trips_to_caller_key() -> None:
    caller = X25519PrivateKey.generate()
    envelope = seal_response(caller.public_key(), b"output", CONTEXT)
    assert open_response(caller, envelope, CONTEXT) == b"output"


def test_accepts_raw_32_byte_public_key(enclave_key: X25519PrivateKey) -> None:
    envelope = seal_request(raw_public(enclave_key), PLAINTEXT, CONTEXT)
    assert open_request(enclave_key, envelope, CONTEXT) == PLAINTEXT


def test_empty_plaintext_round_trips(enclave_key: X25519PrivateKey) -> None:
    envelope = seal_request(enclave_key.public_key(), b"", CONTEXT)
    assert len(envelope) == ENVELOPE_OVERHEAD == 49
    assert open_request(enclave_key, envelope, CONTEXT) == b""


def test_layout_is_version_enc_ciphertext(request_envelope: bytes) -> None:
    assert request_envelope[0] == ENVELOPE_VERSION == 1
    assert len(request_envelope) == 1 + 32 + len(PLAINTEXT) + 16


def test_each_seal_uses_a_fresh_ephemeral_key(enclave_key: X25519PrivateKey) -> None:
    first = seal_request(enclave_key.public_key(), PLAINTEXT, CONTEXT)
    second = seal_request(enclave_key.public_key(), PLAINTEXT, CONTEXT)
    assert first[1:33] != second[1:33]
    assert first[33:] != second[33:]


# Tampering, keys and context binding


@pytest.mark.parametrize(
    "index",
    [1, 16, 32, 33, 33 + len(PLAINTEXT) - 1, -16, -1],
    ids=["enc-first", "enc-middle", "enc-last", "ct-first", "ct-last", "tag-first", "tag-last"],
)
def test_rejects_flipped_byte(
    enclave_key: X25519PrivateKey, request_envelope: bytes, index: int
) -> None:
    tampered = bytearray(request_envelope)
    tampered[index] ^= 0x01
    with pytest.raises(EnvelopeError, match="cannot be opened"):
        open_request(enclave_key, bytes(tampered), CONTEXT)


def test_rejects_every_single_bit_flip(
    enclave_key: X25519PrivateKey, request_envelope: bytes
) -> None:
    for index in range(len(request_envelope)):
        for bit in range(8):
            tampered = bytearray(request_envelope)
            tampered[index] ^= 1 << bit
            with pytest.raises(EnvelopeError):
                open_request(enclave_key, bytes(tampered), CONTEXT)


@pytest.mark.parametrize(
    "other",
    [
        EnvelopeContext(agent="embedder2", request_id="req-0001", chain_id=31337),
        EnvelopeContext(agent="embedder", request_id="req-0002", chain_id=31337),
        EnvelopeContext(agent="embedder", request_id="req-0001", chain_id=1),
    ],
    ids=["agent", "request_id", "chain_id"],
)
def test_rejects_other_context(
    enclave_key: X25519PrivateKey, request_envelope: bytes, other: EnvelopeContext
) -> None:
    with pytest.raises(EnvelopeError, match="another context"):
        open_request(enclave_key, request_envelope, other)


def test_length_prefixes_keep_field_boundaries(enclave_key: X25519PrivateKey) -> None:
    envelope = seal_request(
        enclave_key.public_key(), PLAINTEXT, EnvelopeContext("ab", "c", chain_id=1)
    )
    with pytest.raises(EnvelopeError):
        open_request(enclave_key, envelope, EnvelopeContext("a", "bc", chain_id=1))


def test_request_never_opens_as_response(
    enclave_key: X25519PrivateKey, request_envelope: bytes
) -> None:
    with pytest.raises(EnvelopeError):
        open_response(enclave_key, request_envelope, CONTEXT)


def test_response_never_opens_as_request() -> None:
    caller = X25519PrivateKey.generate()
    envelope = seal_response(caller.public_key(), b"output", CONTEXT)
    with pytest.raises(EnvelopeError):
        open_request(caller, envelope, CONTEXT)


def test_rejects_wrong_private_key(request_envelope: bytes) -> None:
    with pytest.raises(EnvelopeError):
        open_request(X25519PrivateKey.generate(), request_envelope, CONTEXT)


# Malformed envelopes and keys


@pytest.mark.parametrize("length", range(ENVELOPE_OVERHEAD))
def test_rejects_envelope_shorter_than_minimum(
    enclave_key: X25519PrivateKey, request_envelope: bytes, length: int
) -> None:
    with pytest.raises(EnvelopeError):
        open_request(enclave_key, request_envelope[:length], CONTEXT)


def test_rejects_every_truncation(enclave_key: X25519PrivateKey, request_envelope: bytes) -> None:
    for length in range(len(request_envelope)):
        with pytest.raises(EnvelopeError):
            open_request(enclave_key, request_envelope[:length], CONTEXT)


def test_short_envelope_message_names_the_minimum(enclave_key: X25519PrivateKey) -> None:
    with pytest.raises(EnvelopeError, match="48 bytes, shorter than the 49-byte minimum"):
        open_request(enclave_key, bytes([1]) + bytes(47), CONTEXT)


@pytest.mark.parametrize("version", [0, *range(2, 256)])
def test_rejects_unknown_version(
    enclave_key: X25519PrivateKey, request_envelope: bytes, version: int
) -> None:
    with pytest.raises(EnvelopeError, match=f"unknown envelope version {version}"):
        open_request(enclave_key, bytes([version]) + request_envelope[1:], CONTEXT)


def test_rejects_all_zero_enc(enclave_key: X25519PrivateKey, request_envelope: bytes) -> None:
    low_order = request_envelope[:1] + bytes(32) + request_envelope[33:]
    with pytest.raises(EnvelopeError):
        open_request(enclave_key, low_order, CONTEXT)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_rejects_raw_public_key_of_wrong_length(length: int) -> None:
    with pytest.raises(EnvelopeError, match=f"must be 32 bytes, got {length}"):
        seal_request(bytes(length), PLAINTEXT, CONTEXT)


def test_rejects_low_order_public_key() -> None:
    with pytest.raises(EnvelopeError, match="not a usable X25519 key"):
        seal_response(bytes(32), PLAINTEXT, CONTEXT)


def test_error_is_a_value_error_with_stable_code(enclave_key: X25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="envelope is empty") as caught:
        open_request(enclave_key, b"", CONTEXT)
    assert isinstance(caught.value, EnvelopeError)
    assert caught.value.code == "envelope_invalid"


@pytest.mark.parametrize(
    ("agent", "request_id", "chain_id"),
    [
        ("", "r", 1),
        ("a", "", 1),
        ("a", "r", -1),
        ("a", "r", 2**64),
        ("a", "r", True),
        ("\ud800", "r", 1),
        ("a" * 65536, "r", 1),
        ("a", "é" * 32768, 1),
    ],
    ids=[
        "empty-agent",
        "empty-id",
        "negative",
        "too-big",
        "bool",
        "surrogate",
        "long",
        "long-utf8",
    ],
)
def test_context_rejects_unencodable_fields(agent: str, request_id: str, chain_id: int) -> None:
    with pytest.raises(EnvelopeError):
        EnvelopeContext(agent=agent, request_id=request_id, chain_id=chain_id)


def test_context_accepts_field_extremes(enclave_key: X25519PrivateKey) -> None:
    context = EnvelopeContext(agent="a" * 65535, request_id="é" * 32767, chain_id=2**64 - 1)
    envelope = seal_request(enclave_key.public_key(), PLAINTEXT, context)
    assert open_request(enclave_key, envelope, context) == PLAINTEXT


# Interoperability with the documented layout


def test_our_request_opens_with_library_hpke(
    enclave_key: X25519PrivateKey, request_envelope: bytes
) -> None:
    info = documented_info("request", "embedder", "req-0001", 31337)
    assert LIBRARY_SUITE.decrypt(request_envelope[1:], enclave_key, info=info) == PLAINTEXT


def test_our_response_opens_with_pyhpke() -> None:
    caller = X25519PrivateKey.generate()
    envelope = seal_response(caller.public_key(), b"output", CONTEXT)
    info = documented_info("response", "embedder", "req-0001", 31337)
    recipient = KEMKey.from_pyca_cryptography_key(caller)
    enc, ciphertext = envelope[1:33], envelope[33:]
    receiver = PYHPKE_SUITE.create_recipient_context(enc, recipient, info=info)
    assert receiver.open(ciphertext) == b"output"


def test_library_sealed_request_opens_with_ours(enclave_key: X25519PrivateKey) -> None:
    info = documented_info("request", "embedder", "req-0001", 31337)
    sealed = LIBRARY_SUITE.encrypt(PLAINTEXT, enclave_key.public_key(), info=info)
    assert open_request(enclave_key, bytes([1]) + sealed, CONTEXT) == PLAINTEXT


def test_pyhpke_sealed_request_opens_with_ours(enclave_key: X25519PrivateKey) -> None:
    info = documented_info("request", "embedder", "req-0001", 31337)
    recipient = KEMKey.from_pyca_cryptography_key(enclave_key.public_key())
    enc, sender = PYHPKE_SUITE.create_sender_context(recipient, info=info)
    ciphertext = sender.seal(PLAINTEXT)
    assert len(enc) == 32
    assert open_request(enclave_key, bytes([1]) + enc + ciphertext, CONTEXT) == PLAINTEXT


def test_pyhpke_sealed_with_aad_does_not_open(enclave_key: X25519PrivateKey) -> None:
    """The context is in `info`, the AEAD associated data is empty: a sender that put it in the
    AAD instead is told so by a failure, not by a silent success."""
    info = documented_info("request", "embedder", "req-0001", 31337)
    recipient = KEMKey.from_pyca_cryptography_key(enclave_key.public_key())
    enc, sender = PYHPKE_SUITE.create_sender_context(recipient, info=info)
    ciphertext = sender.seal(PLAINTEXT, aad=b"x")
    with pytest.raises(EnvelopeError):
        open_request(enclave_key, bytes([1]) + enc + ciphertext, CONTEXT)


# Properties

contexts = st.builds(
    EnvelopeContext,
    agent=st.text(min_size=1, max_size=40),
    request_id=st.text(min_size=1, max_size=80),
    chain_id=st.integers(min_value=0, max_value=2**64 - 1),
)
PROPERTY_KEY = X25519PrivateKey.generate()


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=4096), context=contexts, response=st.booleans())
def test_property_round_trip(plaintext: bytes, context: EnvelopeContext, response: bool) -> None:
    public: X25519PublicKey | bytes = (
        raw_public(PROPERTY_KEY) if len(plaintext) % 2 else PROPERTY_KEY.public_key()
    )
    if response:
        envelope = seal_response(public, plaintext, context)
        assert open_response(PROPERTY_KEY, envelope, context) == plaintext
    else:
        envelope = seal_request(public, plaintext, context)
        assert open_request(PROPERTY_KEY, envelope, context) == plaintext
    assert len(envelope) == len(plaintext) + ENVELOPE_OVERHEAD


@settings(max_examples=500, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.binary(min_size=48, max_size=200).map(lambda b: bytes([1]) + b),
    ),
    response=st.booleans(),
)
def test_property_random_bytes_never_open(data: bytes, response: bool) -> None:
    opener = open_response if response else open_request
    with pytest.raises(EnvelopeError):
        opener(PROPERTY_KEY, data, CONTEXT)


@settings(max_examples=300, deadline=None)
@given(
    plaintext=st.binary(max_size=256),
    position=st.integers(min_value=0),
    mask=st.integers(min_value=1, max_value=255),
)
def test_property_mutated_envelope_never_opens(plaintext: bytes, position: int, mask: int) -> None:
    envelope = bytearray(seal_request(PROPERTY_KEY.public_key(), plaintext, CONTEXT))
    envelope[position % len(envelope)] ^= mask
    with pytest.raises(EnvelopeError):
        open_request(PROPERTY_KEY, bytes(envelope), CONTEXT)
