"""Groth16 verification of the two real receipts, and every way a changed receipt must fail."""

from __future__ import annotations

import dataclasses

import pytest
from py_ecc.optimized_bn128.optimized_curve import curve_order, field_modulus

from attestation.errors import VerificationError
from attestation.zk import (
    Groth16Proof,
    ImageIdMismatchError,
    ProofInvalidError,
    Receipt,
    SelectorMismatchError,
    VerifiedDcapReceipt,
    VerifiedReceipt,
    ZkError,
    public_inputs,
    verify_groth16,
    verify_receipt,
)
from attestation.zk.params import RISC0_V5
from tests.attestation.zk.conftest import DCAP_IMAGE_ID, V5_IMAGE_ID


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def test_both_samples_verify_under_their_parameter_sets(
    verified_v5: VerifiedReceipt, verified_dcap: VerifiedDcapReceipt
) -> None:
    assert verified_v5.parameters.selector.hex() == "c27d1bc0"
    assert verified_v5.journal == b"just a simple receipt"
    assert verified_dcap.receipt.parameters.selector.hex() == "73c457ba"
    assert verified_dcap.receipt.image_id == DCAP_IMAGE_ID


def test_flipped_journal_bit_fails_the_pairing(v5_receipt: Receipt) -> None:
    changed = dataclasses.replace(v5_receipt, journal=flip(v5_receipt.journal, 21))
    with pytest.raises(ProofInvalidError, match="pairing check fails") as err:
        verify_receipt(changed, image_id=V5_IMAGE_ID)
    assert err.value.check == "receipt.groth16" and err.value.code == "groth16_invalid"
    assert isinstance(err.value, VerificationError) and isinstance(err.value, ZkError)


def test_flipped_image_id_bit_fails_the_pairing_even_when_pinned(v5_receipt: Receipt) -> None:
    other = flip(V5_IMAGE_ID, 255)
    changed = dataclasses.replace(v5_receipt, image_id=other)
    with pytest.raises(ProofInvalidError, match="pairing check fails"):
        verify_receipt(changed, image_id=other)


def test_receipt_for_another_image_is_rejected_before_pairing(v5_receipt: Receipt) -> None:
    with pytest.raises(ImageIdMismatchError) as err:
        verify_receipt(v5_receipt, image_id=DCAP_IMAGE_ID)
    assert err.value.check == "receipt.image_id" and err.value.code == "image_id_mismatch"


def test_unknown_selector_is_rejected_before_the_proof_is_read(v5_receipt: Receipt) -> None:
    # A proof of all-ones words is out of the field: the selector error proves it was not read.
    seal = bytes.fromhex("c27d1bc1") + b"\xff" * 256
    with pytest.raises(SelectorMismatchError, match="c27d1bc1"):
        verify_receipt(dataclasses.replace(v5_receipt, seal=seal), image_id=V5_IMAGE_ID)
    with pytest.raises(ProofInvalidError, match="not in the base field"):
        verify_receipt(
            dataclasses.replace(v5_receipt, seal=v5_receipt.selector + b"\xff" * 256),
            image_id=V5_IMAGE_ID,
        )


def test_every_flipped_proof_bit_is_rejected(v5_receipt: Receipt) -> None:
    """Each one-bit change of A, B or C leaves the field or the curve: rejected without pairing."""
    for bit in range(32, 8 * len(v5_receipt.seal)):
        changed = dataclasses.replace(v5_receipt, seal=flip(v5_receipt.seal, bit))
        with pytest.raises(ProofInvalidError, match=r"not in the base field|not on the BN254"):
            verify_receipt(changed, image_id=V5_IMAGE_ID)
    for bit in range(32):
        changed = dataclasses.replace(v5_receipt, seal=flip(v5_receipt.seal, bit))
        with pytest.raises(SelectorMismatchError):
            verify_receipt(changed, image_id=V5_IMAGE_ID)


def test_negated_a_is_on_the_curve_but_fails_the_pairing(v5_receipt: Receipt) -> None:
    proof = Groth16Proof.from_bytes(v5_receipt.proof)
    negated = dataclasses.replace(proof, a=(proof.a[0], field_modulus - proof.a[1]))
    inputs = public_inputs(RISC0_V5, v5_receipt.claim.digest())
    with pytest.raises(ProofInvalidError, match="pairing check fails"):
        verify_groth16(negated, inputs, RISC0_V5.verifying_key)


def test_public_inputs_split_digests_into_128_bit_halves(v5_receipt: Receipt) -> None:
    inputs = public_inputs(RISC0_V5, v5_receipt.claim.digest())
    assert len(inputs) == 5 and all(0 <= x < 2**128 for x in inputs[:4])
    low, high = inputs[0], inputs[1]
    assert (high << 128 | low).to_bytes(32, "big")[::-1] == RISC0_V5.control_root
    assert inputs[4] == int.from_bytes(RISC0_V5.bn254_control_id, "big")


def test_malformed_proofs_and_inputs_raise_typed_errors(v5_receipt: Receipt) -> None:
    proof = Groth16Proof.from_bytes(v5_receipt.proof)
    inputs = public_inputs(RISC0_V5, v5_receipt.claim.digest())
    vk = RISC0_V5.verifying_key
    cases: list[tuple[Groth16Proof, tuple[int, ...], str]] = [
        (dataclasses.replace(proof, c=(0, 0)), inputs, "C is not on the BN254 curve"),
        (dataclasses.replace(proof, a=(field_modulus, 2)), inputs, "not in the base field"),
        (proof, (*inputs[:4], curve_order), "not in the scalar field"),
        (proof, inputs[:4], "4 public inputs for 6 IC points"),
    ]
    for bad_proof, bad_inputs, message in cases:
        with pytest.raises(ProofInvalidError, match=message):
            verify_groth16(bad_proof, bad_inputs, vk)


@pytest.mark.slow
@pytest.mark.parametrize("bit", [0, 77, 8 * 21 - 1])
def test_flipped_journal_bits_fail_the_v5_receipt(v5_receipt: Receipt, bit: int) -> None:
    changed = dataclasses.replace(v5_receipt, journal=flip(v5_receipt.journal, bit))
    with pytest.raises(ProofInvalidError):
        verify_receipt(changed, image_id=V5_IMAGE_ID)


@pytest.mark.slow
@pytest.mark.parametrize(("part", "bit"), [("journal", 8 * 600 + 3), ("image_id", 0)])
def test_flipped_bits_fail_the_dcap_receipt(dcap_receipt: Receipt, part: str, bit: int) -> None:
    changed = dataclasses.replace(dcap_receipt, **{part: flip(getattr(dcap_receipt, part), bit)})
    with pytest.raises(ProofInvalidError):
        verify_receipt(changed, image_id=changed.image_id)
