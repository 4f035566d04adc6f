"""Envelopes: inputs encrypted to the enclave's attested X25519 key, outputs encrypted back.

RFC 9180 HPKE in base mode with the suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
AES-256-GCM (KEM 0x0020, KDF 0x0001, AEAD 0x0002), through `cryptography`'s built-in single-shot
HPKE; nothing here is a construction of our own. A caller seals a request to the worker's attested
key; the worker seals its response to a caller key (e.g. an ephemeral one the caller put in the
request).

Byte layout, all versions start with the version byte; version 1 is the only one and fixes the
suite above::

    version     1 byte    0x01
    enc         32 bytes  the KEM encapsulated key (the sender's ephemeral X25519 public key)
    ciphertext  n + 16    AES-256-GCM output of the n-byte plaintext, tag last

so an envelope is `len(plaintext) + ENVELOPE_OVERHEAD` (49) bytes long.

Context binding. The single-shot API seals with empty AEAD associated data, and RFC 9180 §8.1
asks single-shot applications to pass auxiliary authenticated data in `info` instead: `info`
enters the key schedule, so a different `info` derives a different key and the tag check fails.
The request context therefore travels in `info`, canonically encoded (big-endian integers)::

    "enclava/envelope/v1"                        19 ASCII bytes, no length prefix
    u16 len(direction) || direction              "request" or "response" (ASCII)
    u16 len(agent)     || agent                  UTF-8
    u16 len(request_id) || request_id            UTF-8
    u64 chain_id

The direction is set by the function, not by the caller, so a request envelope never opens as a
response or vice versa. Opening raises `EnvelopeError` for every failure (malformed, truncated,
unknown version, tampered, wrong key, other context) and never returns partial plaintext. Nothing
here logs; keys and plaintexts never appear in error messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from enclave.errors import EnvelopeError

__all__ = [
    "ENVELOPE_OVERHEAD",
    "ENVELOPE_VERSION",
    "INFO_LABEL",
    "EnvelopeContext",
    "open_request",
    "open_response",
    "seal_request",
    "seal_response",
]

ENVELOPE_VERSION = 1
INFO_LABEL = b"enclava/envelope/v1"
_ENC_SIZE = 32
_TAG_SIZE = 16
ENVELOPE_OVERHEAD = 1 + _ENC_SIZE + _TAG_SIZE
_REQUEST = b"request"
_RESPONSE = b"response"
_MAX_FIELD = 0xFFFF
_MAX_CHAIN_ID = 2**64 - 1
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


@dataclass(frozen=True, slots=True)
class EnvelopeContext:
    """What an envelope is bound to: the agent, the request and the chain it belongs to.

    `agent` and `request_id` are non-empty strings of at most 65535 UTF-8 bytes; `chain_id` is
    an integer in [0, 2**64). Anything else raises `EnvelopeError` at construction.
    """

    agent: str
    request_id: str
    chain_id: int

    def __post_init__(self) -> None:
        _check_text("agent", self.agent)
        _check_text("request_id", self.request_id)
        if type(self.chain_id) is not int or not 0 <= self.chain_id <= _MAX_CHAIN_ID:
            raise EnvelopeError("chain_id must be an integer in [0, 2**64)")


def seal_request(
    enclave_public: X25519PublicKey | bytes, plaintext: bytes, context: EnvelopeContext
) -> bytes:
    """Encrypt a request input to the enclave's (attested) X25519 key."""
    return _seal(enclave_public, plaintext, _info(context, _REQUEST))


def open_request(
    enclave_private: X25519PrivateKey, envelope: bytes, context: EnvelopeContext
) -> bytes:
    """Decrypt a request sealed to this enclave for exactly `context`."""
    return _open(enclave_private, envelope, _info(context, _REQUEST))


def seal_response(
    caller_public: X25519PublicKey | bytes, plaintext: bytes, context: EnvelopeContext
) -> bytes:
    """Encrypt a response output to the caller's X25519 key."""
    return _seal(caller_public, plaintext, _info(context, _RESPONSE))


def open_response(
    caller_private: X25519PrivateKey, envelope: bytes, context: EnvelopeContext
) -> bytes:
    """Decrypt a response sealed to this caller for exactly `context`."""
    return _open(caller_private, envelope, _info(context, _RESPONSE))


def _seal(public: X25519PublicKey | bytes, plaintext: bytes, info: bytes) -> bytes:
    recipient = _public_key(public)
    try:
        sealed = _SUITE.encrypt(plaintext, recipient, info=info)
    except ValueError as exc:  # a low-order point: the X25519 shared secret would be all zero
        raise EnvelopeError("recipient public key is not a usable X25519 key") from exc
    return bytes([ENVELOPE_VERSION]) + sealed


def _open(private: X25519PrivateKey, envelope: bytes, info: bytes) -> bytes:
    if not envelope:
        raise EnvelopeError("envelope is empty")
    if envelope[0] != ENVELOPE_VERSION:
        raise EnvelopeError(
            f"unknown envelope version {envelope[0]} (this build reads {ENVELOPE_VERSION})"
        )
    if len(envelope) < ENVELOPE_OVERHEAD:
        raise EnvelopeError(
            f"envelope is {len(envelope)} bytes, shorter than the {ENVELOPE_OVERHEAD}-byte minimum"
            f" (version, {_ENC_SIZE}-byte enc, {_TAG_SIZE}-byte tag)"
        )
    try:
        return _SUITE.decrypt(envelope[1:], private, info=info)
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError(
            "envelope cannot be opened: wrong key, tampered bytes, or another context "
            "(agent, request id, chain id or direction)"
        ) from exc


def _public_key(key: X25519PublicKey | bytes) -> X25519PublicKey:
    if isinstance(key, X25519PublicKey):
        return key
    if not isinstance(key, bytes):
        raise TypeError("public key must be an X25519PublicKey or 32 raw bytes")
    if len(key) != _ENC_SIZE:
        raise EnvelopeError(f"raw X25519 public key must be {_ENC_SIZE} bytes, got {len(key)}")
    return X25519PublicKey.from_public_bytes(key)


def _info(context: EnvelopeContext, direction: bytes) -> bytes:
    """The HPKE `info` for `context` and `direction` (layout in the module docstring)."""
    return b"".join(
        (
            INFO_LABEL,
            _length_prefixed(direction),
            _length_prefixed(context.agent.encode("utf-8")),
            _length_prefixed(context.request_id.encode("utf-8")),
            struct.pack(">Q", context.chain_id),
        )
    )


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise EnvelopeError(f"{name} must be a non-empty string")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EnvelopeError(f"{name} is not encodable as UTF-8") from exc
    if len(encoded) > _MAX_FIELD:
        raise EnvelopeError(f"{name} is longer than {_MAX_FIELD} UTF-8 bytes")


def _length_prefixed(field: bytes) -> bytes:
    return struct.pack(">H", len(field)) + field
