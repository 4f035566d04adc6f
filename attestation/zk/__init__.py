"""RISC Zero receipts: claim digests, verifier parameters, Groth16 verification, DCAP journals.

    from attestation.zk import Receipt, explain_receipt
    receipt = Receipt.from_json(text)
    verdict = explain_receipt(receipt, image_id=pinned, now=now, policy=policy,
                              trust_anchor=TrustAnchor.intel())

The image ID is the caller's to pin (it names the guest program whose output is trusted);
verifier parameter sets are data in `params`, chosen by the seal's selector.
"""

from attestation.zk.errors import (
    ImageIdMismatchError,
    JournalFormatError,
    ProofInvalidError,
    ReceiptFormatError,
    ReceiptVerificationError,
    SelectorMismatchError,
    ZkError,
)
from attestation.zk.groth16 import (
    Groth16Proof,
    VerifiedReceipt,
    check_receipt_header,
    public_inputs,
    verify_groth16,
    verify_receipt,
)
from attestation.zk.journal import CollateralHashes, DcapJournal, decode_dcap_journal
from attestation.zk.params import (
    PARAMETER_SETS,
    VerifierParameters,
    VerifyingKey,
    parameters_for,
)
from attestation.zk.receipt import Receipt, ReceiptClaim, output_digest, tagged_digest
from attestation.zk.verdict import (
    ZK_CHECKS,
    VerifiedDcapReceipt,
    ZkVerdict,
    explain_receipt,
    verify_dcap_receipt,
)

__all__ = [
    "PARAMETER_SETS",
    "ZK_CHECKS",
    "CollateralHashes",
    "DcapJournal",
    "Groth16Proof",
    "ImageIdMismatchError",
    "JournalFormatError",
    "ProofInvalidError",
    "Receipt",
    "ReceiptClaim",
    "ReceiptFormatError",
    "ReceiptVerificationError",
    "SelectorMismatchError",
    "VerifiedDcapReceipt",
    "VerifiedReceipt",
    "VerifierParameters",
    "VerifyingKey",
    "ZkError",
    "ZkVerdict",
    "check_receipt_header",
    "decode_dcap_journal",
    "explain_receipt",
    "output_digest",
    "parameters_for",
    "public_inputs",
    "tagged_digest",
    "verify_dcap_receipt",
    "verify_groth16",
    "verify_receipt",
]
