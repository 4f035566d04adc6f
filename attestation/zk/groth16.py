"""Groth16 verification of RISC Zero receipts over BN254, with py_ecc's optimized pairing.

The check is the one risc0-ethereum's `RiscZeroGroth16Verifier` makes on chain:

    e(-A, B) · e(alpha, beta) · e(vk_x, gamma) · e(C, delta) == 1,
    vk_x = IC[0] + Σ public_i · IC[i+1]

with five public inputs: the control root as two 128-bit halves, the claim digest likewise, and
the BN254 control ID. Every coordinate must be below the field modulus, every point on its
curve (and B in the order-r subgroup, as the EVM pairing precompile requires); a point at
infinity is refused. Proof points are untrusted input, so a bad one is a `ProofInvalidError`,
never an exception from py_ecc. One verification costs about half a second in pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ2 as FQ2
from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128.optimized_curve import (
    add,
    b,
    b2,
    curve_order,
    field_modulus,
    is_inf,
    is_on_curve,
    multiply,
    neg,
)
from py_ecc.optimized_bn128.optimized_pairing import final_exponentiate, pairing

from attestation.zk.errors import ImageIdMismatchError, ProofInvalidError, ReceiptFormatError
from attestation.zk.params import (
    PARAMETER_SETS,
    G1Affine,
    G2Affine,
    VerifierParameters,
    VerifyingKey,
    parameters_for,
)
from attestation.zk.receipt import PROOF_SIZE, Receipt

__all__ = [
    "Groth16Proof",
    "VerifiedReceipt",
    "check_receipt_header",
    "public_inputs",
    "verify_groth16",
    "verify_receipt",
]

_G1 = tuple[FQ, FQ, FQ]
_G2 = tuple[FQ2, FQ2, FQ2]
_CHECK = "receipt.groth16"


@dataclass(frozen=True, slots=True)
class Groth16Proof:
    """The proof part of a seal: A, C in G1 and B in G2, G2 in EVM order (imaginary first)."""

    a: G1Affine
    b: G2Affine
    c: G1Affine

    @classmethod
    def from_bytes(cls, raw: bytes) -> Groth16Proof:
        if len(raw) != PROOF_SIZE:
            raise ReceiptFormatError(f"Groth16 proof must be {PROOF_SIZE} bytes, got {len(raw)}")
        w = [int.from_bytes(raw[i : i + 32], "big") for i in range(0, PROOF_SIZE, 32)]
        return cls((w[0], w[1]), ((w[2], w[3]), (w[4], w[5])), (w[6], w[7]))


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt whose proof verified for `claim_digest` under `parameters`."""

    receipt: Receipt
    parameters: VerifierParameters
    claim_digest: bytes

    @property
    def image_id(self) -> bytes:
        return self.receipt.image_id

    @property
    def journal(self) -> bytes:
        return self.receipt.journal


def public_inputs(params: VerifierParameters, claim_digest: bytes) -> tuple[int, ...]:
    """The five public inputs, in the order of the verifying key's IC points."""
    return (*_split(params.control_root), *_split(claim_digest), _int(params.bn254_control_id))


def verify_receipt(
    receipt: Receipt,
    *,
    image_id: bytes,
    parameter_sets: tuple[VerifierParameters, ...] = PARAMETER_SETS,
) -> VerifiedReceipt:
    """Verify `receipt` as a normal halt of program `image_id` (pinned by the caller, not taken
    from the receipt). Cheap checks first: `check_receipt_header`, then the pairing."""
    params = check_receipt_header(receipt, image_id=image_id, parameter_sets=parameter_sets)
    proof = Groth16Proof.from_bytes(receipt.proof)
    claim_digest = receipt.claim.digest()
    verify_groth16(proof, public_inputs(params, claim_digest), params.verifying_key)
    return VerifiedReceipt(receipt, params, claim_digest)


def check_receipt_header(
    receipt: Receipt,
    *,
    image_id: bytes,
    parameter_sets: tuple[VerifierParameters, ...] = PARAMETER_SETS,
) -> VerifierParameters:
    """The checks that cost nothing: the receipt is for `image_id`, and its selector names one
    of `parameter_sets` (returned). Run before any pairing."""
    if receipt.image_id != image_id:
        raise ImageIdMismatchError(
            "receipt.image_id",
            f"receipt is for image {receipt.image_id.hex()}, expected {image_id.hex()}",
        )
    return parameters_for(receipt.selector, parameter_sets)


def verify_groth16(proof: Groth16Proof, inputs: Sequence[int], vk: VerifyingKey) -> None:
    """Raise `ProofInvalidError` unless `proof` verifies for `inputs` under `vk`."""
    if len(inputs) + 1 != len(vk.ic):
        raise ProofInvalidError(_CHECK, f"{len(inputs)} public inputs for {len(vk.ic)} IC points")
    for value in inputs:
        if not 0 <= value < curve_order:
            raise ProofInvalidError(_CHECK, "a public input is not in the scalar field")
    a, c = _g1(proof.a, "A"), _g1(proof.c, "C")
    b_point = _g2(proof.b, "B")
    if not is_inf(multiply(b_point, curve_order)):
        raise ProofInvalidError(_CHECK, "proof point B is not in the order-r subgroup of G2")
    vk_x = _g1(vk.ic[0], "IC[0]")
    for value, point in zip(inputs, vk.ic[1:], strict=True):
        vk_x = add(vk_x, multiply(_g1(point, "IC"), value))
    product = (
        _miller(b_point, neg(a))
        * _miller(_g2(vk.beta, "beta"), _g1(vk.alpha, "alpha"))
        * _miller(_g2(vk.gamma, "gamma"), vk_x)
        * _miller(_g2(vk.delta, "delta"), c)
    )
    if final_exponentiate(product) != FQ12.one():
        raise ProofInvalidError(_CHECK, "the Groth16 pairing check fails for this claim digest")


def _miller(q: _G2, p: _G1) -> FQ12:
    return pairing(q, p, final_exponentiate=False)


def _coordinate(value: int, name: str) -> int:
    if not 0 <= value < field_modulus:
        raise ProofInvalidError(_CHECK, f"a coordinate of {name} is not in the base field")
    return value


def _g1(p: G1Affine, name: str) -> _G1:
    point = (FQ(_coordinate(p[0], name)), FQ(_coordinate(p[1], name)), FQ.one())
    if not is_on_curve(point, b):
        raise ProofInvalidError(_CHECK, f"point {name} is not on the BN254 curve")
    return point


def _g2(p: G2Affine, name: str) -> _G2:
    (x_im, x_re), (y_im, y_re) = p
    x = FQ2([_coordinate(x_re, name), _coordinate(x_im, name)])
    y = FQ2([_coordinate(y_re, name), _coordinate(y_im, name)])
    point = (x, y, FQ2.one())
    if not is_on_curve(point, b2):
        raise ProofInvalidError(_CHECK, f"point {name} is not on the BN254 twist")
    return point


def _split(digest: bytes) -> tuple[int, int]:
    """risc0's `splitDigest`: reverse the bytes, then (low 128 bits, high 128 bits)."""
    value = int.from_bytes(digest[::-1], "big")
    return value & ((1 << 128) - 1), value >> 128


def _int(word: bytes) -> int:
    return int.from_bytes(word, "big")
