"""Bindings for the zk attestation path: `RiscZeroGroth16Verifier` (a RISC Zero Groth16 receipt
verifier for one parameter set) and `ZkAttestationVerifier` (an `IAttestationVerifier` that
registers a worker from a receipt of Automata's DCAP verification guest).

The evidence layout and the trust argument are documented on the contracts
(`contracts/src/zk/`); this module only encodes, deploys and calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import encode
from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from contracts.client import Transactor

__all__ = [
    "AUTOMATA_TCB_STATUS",
    "AttestedWorker",
    "ReceiptParameters",
    "VerifiedTd",
    "ZkEvidence",
    "ZkPolicy",
    "deploy_receipt_verifier",
    "deploy_zk_verifier",
    "send_verify_receipt",
    "verify_evidence",
    "verify_receipt",
]

# TCB status codes as Automata's guest commits them (its `TCBStatus` enum order). Not the codes
# of a signed verdict (`typed_data.TCB_STATUS_CODES`), which order the two Configuration statuses
# the other way round.
AUTOMATA_TCB_STATUS = {
    "UpToDate": 0,
    "SWHardeningNeeded": 1,
    "ConfigurationAndSWHardeningNeeded": 2,
    "ConfigurationNeeded": 3,
    "OutOfDate": 4,
    "OutOfDateConfigurationNeeded": 5,
    "Revoked": 6,
    "Unrecognized": 7,
}
_EVIDENCE_TYPE = "(bytes,bytes,address,bytes32,bytes32,bytes,bytes,bytes)"


@dataclass(frozen=True)
class ReceiptParameters:
    """One RISC Zero Groth16 parameter set: the zkVM release's control root and BN254 control ID
    (both 32 bytes, as RISC Zero's `ControlID.sol` writes them)."""

    control_root: bytes
    bn254_control_id: bytes


@dataclass(frozen=True)
class ZkPolicy:
    """What a `ZkAttestationVerifier` accepts.

    `image_id`: Automata's DCAP guest; `intel_root_ca_hash`: keccak256 of the Intel root CA's TBS
    certificate; `max_age`: seconds a registration lasts after the collateral time;
    `tcb_statuses`: accepted `AUTOMATA_TCB_STATUS` codes; `platforms`: accepted worker images as
    keccak256(TDATTRIBUTES ‖ XFAM ‖ MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0-2)."""

    image_id: bytes
    intel_root_ca_hash: bytes
    max_age: int
    tcb_statuses: tuple[int, ...]
    platforms: tuple[bytes, ...]


@dataclass(frozen=True)
class ZkEvidence:
    """The evidence `ZkAttestationVerifier.verify` takes: the receipt, the opening of REPORTDATA
    (worker address, X25519 key, nonce) and of RTMR3 (its value before the `enclava.agent`
    event, that event's payload, the 48-byte digests extended after it)."""

    seal: bytes
    journal: bytes
    worker: str
    x25519_public: bytes
    nonce: bytes
    rtmr3_before: bytes
    agent_payload: bytes
    later_digests: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        fields = (
            self.seal,
            self.journal,
            self.worker,
            self.x25519_public,
            self.nonce,
            self.rtmr3_before,
            self.agent_payload,
            b"".join(self.later_digests),
        )
        return encode([_EVIDENCE_TYPE], [fields])


@dataclass(frozen=True)
class VerifiedTd:
    """`ZkAttestationVerifier.verifyReceipt`'s reading of a verified journal (RTMR3 48 bytes,
    REPORTDATA 64 bytes)."""

    tcb_status: int
    fmspc: bytes
    td_attributes: bytes
    platform: bytes
    rtmr3: bytes
    report_data: bytes
    collateral_time: int
    root_ca_hash: bytes
    journal_digest: bytes
    expires_at: int


@dataclass(frozen=True)
class AttestedWorker:
    """What `ZkAttestationVerifier.verify` returns."""

    worker: str
    measurement: bytes
    expires_at: int
    quote_hash: bytes


def deploy_receipt_verifier(tx: Transactor, sender: LocalAccount, params: ReceiptParameters) -> str:
    """Deploy a `RiscZeroGroth16Verifier` for `params`; returns its address."""
    contract = tx.deploy(
        sender, "RiscZeroGroth16Verifier", params.control_root, params.bn254_control_id
    )
    return str(contract.address)


def deploy_zk_verifier(
    tx: Transactor, sender: LocalAccount, receipt_verifier: str, policy: ZkPolicy
) -> str:
    """Deploy a `ZkAttestationVerifier` over `receipt_verifier`; returns its address."""
    contract = tx.deploy(
        sender,
        "ZkAttestationVerifier",
        receipt_verifier,
        policy.image_id,
        policy.intel_root_ca_hash,
        policy.max_age,
        list(policy.tcb_statuses),
        list(policy.platforms),
    )
    return str(contract.address)


def verify_receipt(tx: Transactor, verifier: str, seal: bytes, journal: bytes) -> VerifiedTd:
    """Steps 1-4 of `ZkAttestationVerifier` (receipt, Intel root, time, image policy) as a
    call; raises `RevertError` naming the failed check."""
    fn = tx.contract("ZkAttestationVerifier", verifier).functions.verifyReceipt(seal, journal)
    td, expires_at = tx.call(fn)
    (status, fmspc, attributes, platform, r3_high, r3_low, rd_high, rd_low, time, root, jd) = td
    return VerifiedTd(
        tcb_status=int(status),
        fmspc=bytes(fmspc),
        td_attributes=bytes(attributes),
        platform=bytes(platform),
        rtmr3=bytes(r3_high) + bytes(r3_low)[:16],
        report_data=bytes(rd_high) + bytes(rd_low),
        collateral_time=int(time),
        root_ca_hash=bytes(root),
        journal_digest=bytes(jd),
        expires_at=int(expires_at),
    )


def verify_evidence(tx: Transactor, verifier: str, evidence: ZkEvidence) -> AttestedWorker:
    """`ZkAttestationVerifier.verify` as a call; raises `RevertError` naming the failed check."""
    fn = tx.contract("ZkAttestationVerifier", verifier).functions.verify(evidence.encode())
    worker, measurement, expires_at, quote_hash = tx.call(fn)
    return AttestedWorker(str(worker), bytes(measurement), int(expires_at), bytes(quote_hash))


def send_verify_receipt(
    tx: Transactor, sender: LocalAccount, verifier: str, seal: bytes, journal: bytes
) -> TxReceipt:
    """`verifyReceipt` sent as a transaction, for its `gasUsed` (a relayer pays about this much
    for the receipt part of a registration)."""
    fn = tx.contract("ZkAttestationVerifier", verifier).functions.verifyReceipt(seal, journal)
    return tx.send(sender, fn)
