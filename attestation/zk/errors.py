"""Errors of `attestation.zk`: one branch of the `attestation` hierarchy, rooted at `ZkError`.

    AttestationError
    └── ZkError                        anything about a RISC Zero receipt
        ├── ReceiptFormatError         the receipt (JSON, hex, seal, points) is malformed
        ├── JournalFormatError         the journal is not a well-formed DCAP verified output
        └── ReceiptVerificationError   the receipt does not verify (also a `VerificationError`)
            ├── SelectorMismatchError  the seal is for verifier parameters we do not hold
            ├── ImageIdMismatchError   the receipt is for another guest program
            └── ProofInvalidError      the Groth16 pairing check fails for this claim

`except ZkError` catches all of them; `except VerificationError` catches the verification
failures together with those of a direct quote verification.
"""

from __future__ import annotations

from attestation.errors import AttestationError, VerificationError


class ZkError(AttestationError):
    """Base of every error raised by `attestation.zk`."""

    code = "zk_error"


class ReceiptFormatError(ZkError, ValueError):
    """A receipt cannot be read: bad JSON, bad hex, wrong lengths, proof points off the curve."""

    code = "malformed_receipt"


class JournalFormatError(ZkError, ValueError):
    """A journal is not the DCAP verified output it claims to be (names the field and offset)."""

    code = "malformed_journal"

    def __init__(self, field: str, offset: int, problem: str) -> None:
        super().__init__(f"journal {field} at offset {offset}: {problem}")
        self.field = field
        self.offset = offset
        self.problem = problem


class ReceiptVerificationError(VerificationError, ZkError):
    """A receipt was read but does not verify. `check` names the failed check."""

    code = "receipt_invalid"


class SelectorMismatchError(ReceiptVerificationError):
    code = "selector_unknown"


class ImageIdMismatchError(ReceiptVerificationError):
    code = "image_id_mismatch"


class ProofInvalidError(ReceiptVerificationError):
    code = "groth16_invalid"
