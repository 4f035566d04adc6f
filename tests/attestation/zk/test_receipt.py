"""Receipt model, tagged digests, claim digests and verifier parameter sets (no pairing here)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from attestation.zk import (
    PARAMETER_SETS,
    Receipt,
    ReceiptClaim,
    ReceiptFormatError,
    SelectorMismatchError,
    VerifiedReceipt,
    parameters_for,
    tagged_digest,
)
from attestation.zk.params import RISC0_274ECCAF, RISC0_V5
from attestation.zk.receipt import SYSTEM_STATE_ZERO_DIGEST
from tests.attestation.zk.conftest import V5_IMAGE_ID, ZK_SAMPLES


def sample_doc(name: str = "risc0_groth16_receipt_v5.json") -> dict[str, object]:
    doc = json.loads((ZK_SAMPLES / name).read_text())
    assert isinstance(doc, dict)
    return doc


def test_tagged_digest_reproduces_risc0_halted_system_state() -> None:
    # risc0.SystemState{pc: 0, merkle_root: zero}: one zero down digest, one zero data word.
    assert tagged_digest("risc0.SystemState", [bytes(32)], [0]) == SYSTEM_STATE_ZERO_DIGEST


def test_selectors_are_computed_from_the_parameter_data() -> None:
    assert RISC0_V5.selector.hex() == "c27d1bc0"
    assert RISC0_274ECCAF.selector.hex() == "73c457ba"
    assert [p.selector for p in PARAMETER_SETS] == [RISC0_V5.selector, RISC0_274ECCAF.selector]


def test_selector_changes_with_any_parameter() -> None:
    root = bytes([RISC0_V5.control_root[0] ^ 1]) + RISC0_V5.control_root[1:]
    assert dataclasses.replace(RISC0_V5, control_root=root).selector != RISC0_V5.selector
    vk = dataclasses.replace(RISC0_V5.verifying_key, ic=RISC0_V5.verifying_key.ic[:-1])
    assert dataclasses.replace(RISC0_V5, verifying_key=vk).selector != RISC0_V5.selector


def test_parameters_for_picks_the_set_a_seal_names(v5_receipt: Receipt) -> None:
    assert parameters_for(v5_receipt.selector) is RISC0_V5
    with pytest.raises(SelectorMismatchError) as err:
        parameters_for(bytes.fromhex("deadbeef"))
    assert err.value.code == "selector_unknown" and err.value.check == "seal.selector"
    with pytest.raises(SelectorMismatchError, match="none"):
        parameters_for(v5_receipt.selector, ())


def test_claim_digest_computed_is_the_one_that_verified(
    v5_receipt: Receipt, verified_v5: VerifiedReceipt
) -> None:
    claim = ReceiptClaim.ok(V5_IMAGE_ID, v5_receipt.journal_digest)
    assert claim == v5_receipt.claim
    assert verified_v5.claim_digest == claim.digest()
    other = ReceiptClaim.ok(V5_IMAGE_ID, bytes(32))
    assert other.digest() != claim.digest()
    exited = dataclasses.replace(claim, exit_user=1)
    assert exited.digest() != claim.digest()


def test_loads_the_sample_format_ignoring_provenance_keys(v5_receipt: Receipt) -> None:
    doc = sample_doc()
    assert v5_receipt.journal == b"just a simple receipt"
    assert v5_receipt.image_id == V5_IMAGE_ID
    assert len(v5_receipt.seal) == 260 and v5_receipt.selector.hex() == "c27d1bc0"
    doc["seal"] = "0x" + str(doc["seal"]).upper()
    assert Receipt.from_json(json.dumps(doc)) == v5_receipt


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"seal": "00", "journal": ""}', "'image_id' must be a hex string"),
        ("[" * 5000 + "]" * 5000, "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_unreadable_receipts_raise_malformed_receipt(text: str | bytes, message: str) -> None:
    with pytest.raises(ReceiptFormatError, match=message) as err:
        Receipt.from_json(text)
    assert err.value.code == "malformed_receipt" and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seal", "zz", "'seal' is not valid hex"),
        ("seal", 7, "'seal' must be a hex string"),
        ("image_id", "00" * 31, "image ID must be 32 bytes, got 31"),
        ("journal", "abc", "'journal' is not valid hex"),
    ],
)
def test_bad_fields_raise_malformed_receipt(field: str, value: object, message: str) -> None:
    doc = sample_doc()
    doc[field] = value
    with pytest.raises(ReceiptFormatError, match=message):
        Receipt.from_json(json.dumps(doc))


def test_truncated_and_overlong_seals_are_rejected() -> None:
    doc = sample_doc()
    seal = str(doc["seal"])
    for bad in (seal[:-2], seal + "00", seal[:8]):
        doc["seal"] = bad
        with pytest.raises(ReceiptFormatError, match="seal must be 260 bytes"):
            Receipt.from_json(json.dumps(doc))
