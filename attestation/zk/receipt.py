"""The RISC Zero receipt model: seal, image ID, journal, and the claim digest a seal proves.

A Groth16 receipt proves one 32-byte *claim digest*; everything a verifier knows about the run
(which program, which output) must enter through it. For a run that halted normally with no
input and no assumptions the claim is `ReceiptClaim.ok(image_id, sha256(journal))`, so changing
the image ID or one journal bit changes the digest and the proof no longer verifies.

Digests are risc0's tagged SHA-256 structs:
`sha256(sha256(tag) ‖ down digests ‖ data words (u32 little-endian) ‖ u16 little-endian count
of down digests)` — the same bytes as `abi.encodePacked(..., uint16(n) << 8)` in Solidity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attestation import safejson
from attestation.zk.errors import ReceiptFormatError

__all__ = [
    "DIGEST_SIZE",
    "PROOF_SIZE",
    "SEAL_SIZE",
    "SELECTOR_SIZE",
    "SYSTEM_STATE_ZERO_DIGEST",
    "Receipt",
    "ReceiptClaim",
    "output_digest",
    "tagged_digest",
    "tagged_list",
]

DIGEST_SIZE = 32
SELECTOR_SIZE = 4
PROOF_SIZE = 8 * 32  # a (2 words), b (2x2 words), c (2 words), big-endian uint256
SEAL_SIZE = SELECTOR_SIZE + PROOF_SIZE
_ZERO = bytes(DIGEST_SIZE)

#: Digest of the zkVM's halted system state (`risc0.SystemState` with pc 0 and a zero root).
SYSTEM_STATE_ZERO_DIGEST = bytes.fromhex(
    "a3acc27117418996340b84e5a90f3ef4c49d22c79e44aad822ec9c313e1eb8e2"
)


def tagged_digest(tag: str, down: Sequence[bytes], data: Sequence[int] = ()) -> bytes:
    """risc0's `tagged_struct`: `down` are 32-byte digests, `data` are u32 words."""
    h = hashlib.sha256(hashlib.sha256(tag.encode()).digest())
    for digest in down:
        h.update(digest)
    for word in data:
        h.update(word.to_bytes(4, "little"))
    h.update(len(down).to_bytes(2, "little"))
    return h.digest()


def tagged_list(tag: str, items: Sequence[bytes]) -> bytes:
    """risc0's `tagged_iter` / Solidity `taggedList`: a right fold of (head, tail) pairs."""
    tail = _ZERO
    for head in reversed(items):
        tail = tagged_digest(tag, [head, tail])
    return tail


def output_digest(journal_digest: bytes, assumptions_digest: bytes = _ZERO) -> bytes:
    """`risc0.Output`; a receipt with no assumptions has an all-zero assumptions digest."""
    return tagged_digest("risc0.Output", [journal_digest, assumptions_digest])


@dataclass(frozen=True, slots=True)
class ReceiptClaim:
    """What a receipt proves about one run. Exit codes are (system, user); (0, 0) = halted."""

    pre_state: bytes
    post_state: bytes
    exit_system: int
    exit_user: int
    input: bytes
    output: bytes

    @classmethod
    def ok(cls, image_id: bytes, journal_digest: bytes) -> ReceiptClaim:
        """A normal halt of program `image_id` that committed a journal with this digest."""
        return cls(image_id, SYSTEM_STATE_ZERO_DIGEST, 0, 0, _ZERO, output_digest(journal_digest))

    def digest(self) -> bytes:
        return tagged_digest(
            "risc0.ReceiptClaim",
            [self.input, self.pre_state, self.post_state, self.output],
            [self.exit_system << 24, self.exit_user << 24],
        )


@dataclass(frozen=True, slots=True)
class Receipt:
    """A Groth16 receipt as the EVM verifiers take it: `seal` = 4-byte selector + proof."""

    seal: bytes
    image_id: bytes
    journal: bytes

    def __post_init__(self) -> None:
        if len(self.seal) != SEAL_SIZE:
            raise ReceiptFormatError(
                f"seal must be {SEAL_SIZE} bytes (selector + Groth16 proof), got {len(self.seal)}"
            )
        if len(self.image_id) != DIGEST_SIZE:
            raise ReceiptFormatError(
                f"image ID must be {DIGEST_SIZE} bytes, got {len(self.image_id)}"
            )

    @property
    def selector(self) -> bytes:
        return self.seal[:SELECTOR_SIZE]

    @property
    def proof(self) -> bytes:
        return self.seal[SELECTOR_SIZE:]

    @property
    def journal_digest(self) -> bytes:
        return hashlib.sha256(self.journal).digest()

    @property
    def claim(self) -> ReceiptClaim:
        return ReceiptClaim.ok(self.image_id, self.journal_digest)

    @classmethod
    def from_json(cls, text: str | bytes) -> Receipt:
        """A JSON object with hex strings `seal`, `image_id` and `journal` (0x optional); other
        keys (provenance, notes) are ignored — verifier parameters never come from a receipt."""
        try:
            doc = safejson.loads(text)
        except ValueError as exc:
            raise ReceiptFormatError(f"receipt is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ReceiptFormatError("receipt must be a JSON object")
        return cls.from_mapping(doc)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> Receipt:
        return cls(
            seal=_hex_field(doc, "seal"),
            image_id=_hex_field(doc, "image_id"),
            journal=_hex_field(doc, "journal"),
        )


def _hex_field(doc: Mapping[str, Any], name: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise ReceiptFormatError(f"receipt field {name!r} must be a hex string")
    text = value.strip()
    text = text[2:] if text[:2].lower() == "0x" else text
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ReceiptFormatError(f"receipt field {name!r} is not valid hex") from None
