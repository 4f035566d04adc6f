"""RISC Zero Groth16 verifier parameters: which proofs we accept, kept as versioned data.

A parameter set is (control root, BN254 control ID, verifying key). Its *selector* — the first
4 bytes of every seal made for it — is computed here from the set, never read from a receipt:
a seal names the set it claims, and a seal whose selector is not one of ours is rejected before
any pairing. Adding a set means adding data below with its source; nothing else changes.

Coordinates are as in risc0-ethereum's `Groth16Verifier.sol`: big-endian uint256, G2 points in
EVM order (imaginary part first), `((x_imag, x_real), (y_imag, y_real))`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from attestation.zk.errors import SelectorMismatchError
from attestation.zk.receipt import tagged_digest, tagged_list

__all__ = [
    "PARAMETER_SETS",
    "RISC0_274ECCAF",
    "RISC0_V5",
    "G1Affine",
    "G2Affine",
    "VerifierParameters",
    "VerifyingKey",
    "parameters_for",
]

G1Affine = tuple[int, int]
G2Affine = tuple[tuple[int, int], tuple[int, int]]


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _g1_digest(p: G1Affine) -> bytes:
    return hashlib.sha256(_word(p[0]) + _word(p[1])).digest()


def _g2_digest(p: G2Affine) -> bytes:
    return hashlib.sha256(b"".join(_word(c) for pair in p for c in pair)).digest()


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A Groth16 verifying key over BN254; `ic` has one point more than there are public inputs."""

    alpha: G1Affine
    beta: G2Affine
    gamma: G2Affine
    delta: G2Affine
    ic: tuple[G1Affine, ...]

    def digest(self) -> bytes:
        """risc0's `VerifyingKey` digest (`verifier_key_digest()` in `Groth16Verifier.sol`)."""
        ic = tagged_list("risc0_groth16.VerifyingKey.IC", [_g1_digest(p) for p in self.ic])
        down = [
            _g1_digest(self.alpha),
            _g2_digest(self.beta),
            _g2_digest(self.gamma),
            _g2_digest(self.delta),
            ic,
        ]
        return tagged_digest("risc0_groth16.VerifyingKey", down)


@dataclass(frozen=True)
class VerifierParameters:
    """One accepted parameter set. `version` names its source, so a verdict can say which."""

    version: str
    control_root: bytes
    bn254_control_id: bytes
    verifying_key: VerifyingKey

    @cached_property
    def digest(self) -> bytes:
        """`Groth16ReceiptVerifierParameters` digest; the control ID enters byte-reversed."""
        down = [self.control_root, self.bn254_control_id[::-1], self.verifying_key.digest()]
        return tagged_digest("risc0.Groth16ReceiptVerifierParameters", down)

    @property
    def selector(self) -> bytes:
        return self.digest[:4]


# risc0-ethereum contracts/src/groth16/Groth16Verifier.sol (the same key for both sets below).
_RISC0_GROTH16_VK = VerifyingKey(
    alpha=(
        20491192805390485299153009773594534940189261866228447918068658471970481763042,
        9383485363053290200918347156157836566562967994039712273449902621266178545958,
    ),
    beta=(
        (
            4252822878758300859123897981450591353533073413197771768651442665752259397132,
            6375614351688725206403948262868962793625744043794305715222011528459656738731,
        ),
        (
            21847035105528745403288232691147584728191162732299865338377159692350059136679,
            10505242626370262277552901082094356697409835680220590971873171140371331206856,
        ),
    ),
    gamma=(
        (
            11559732032986387107991004021392285783925812861821192530917403151452391805634,
            10857046999023057135944570762232829481370756359578518086990519993285655852781,
        ),
        (
            4082367875863433681332203403145435568316851327593401208105741076214120093531,
            8495653923123431417604973247489272438418190587263600148770280649306958101930,
        ),
    ),
    delta=(
        (
            1668323501672964604911431804142266013250380587483576094566949227275849579036,
            12043754404802191763554326994664886008979042643626290185762540825416902247219,
        ),
        (
            7710631539206257456743780535472368339139328733484942210876916214502466455394,
            13740680757317479711909903993315946540841369848973133181051452051592786724563,
        ),
    ),
    ic=(
        (
            8446592859352799428420270221449902464741693648963397251242447530457567083492,
            1064796367193003797175961162477173481551615790032213185848276823815288302804,
        ),
        (
            3179835575189816632597428042194253779818690147323192973511715175294048485951,
            20895841676865356752879376687052266198216014795822152491318012491767775979074,
        ),
        (
            5332723250224941161709478398807683311971555792614491788690328996478511465287,
            21199491073419440416471372042641226693637837098357067793586556692319371762571,
        ),
        (
            12457994489566736295787256452575216703923664299075106359829199968023158780583,
            19706766271952591897761291684837117091856807401404423804318744964752784280790,
        ),
        (
            19617808913178163826953378459323299110911217259216006187355745713323154132237,
            21663537384585072695701846972542344484111393047775983928357046779215877070466,
        ),
        (
            6834578911681792552110317589222010969491336870276623105249474534788043166867,
            15060583660288623605191393599883223885678013570733629274538391874953353488393,
        ),
    ),
)

_BN254_CONTROL_ID = bytes.fromhex(
    "04446e66d300eb7fb45c9726bb53c793dda407a62e9601618bb43c5c14657ac0"
)

#: Selector c27d1bc0: risc0-ethereum @6329676e (`ControlID.sol`, `TestReceiptV5_0.sol`).
RISC0_V5 = VerifierParameters(
    version="risc0-ethereum@6329676e (receipt v5.0)",
    control_root=bytes.fromhex("b1f64013f70bbb386a8b3a3d63552c5cb5ea4a549ec7fb1ecc2a031dbf488167"),
    bn254_control_id=_BN254_CONTROL_ID,
    verifying_key=_RISC0_GROTH16_VK,
)

#: Selector 73c457ba: risc0-ethereum @274eccaf (`ControlID.sol`), used by Automata's DCAP guest.
RISC0_274ECCAF = VerifierParameters(
    version="risc0-ethereum@274eccaf",
    control_root=bytes.fromhex("a54dc85ac99f851c92d7c96d7318af41dbe7c0194edfcc37eb4d422a998c1f56"),
    bn254_control_id=_BN254_CONTROL_ID,
    verifying_key=_RISC0_GROTH16_VK,
)

PARAMETER_SETS: tuple[VerifierParameters, ...] = (RISC0_V5, RISC0_274ECCAF)


def parameters_for(
    selector: bytes, sets: tuple[VerifierParameters, ...] = PARAMETER_SETS
) -> VerifierParameters:
    """The parameter set in `sets` whose selector is `selector`."""
    for params in sets:
        if params.selector == selector:
            return params
    known = ", ".join(p.selector.hex() for p in sets) or "none"
    raise SelectorMismatchError(
        "seal.selector",
        f"selector {selector.hex()} is not one of the accepted verifier parameters ({known})",
    )
