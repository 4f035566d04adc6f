"""The zk attestation path on chain, on the embedded chain and on Anvil, with real receipts:
RISC Zero's v5 test receipt and Automata's Groth16 receipt of a real TDX quote's DCAP
verification (tests/data/zk-samples, copied from /work/shared/zk-samples).

Every expectation is computed here from the sample bytes (README formulas, the journal layout,
`attestation.binding`, `attestation.eventlog`), not read back from the contracts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from attestation.binding import worker_report_data
from attestation.eventlog import RuntimeEvent, agent_event, extend
from attestation.token import agent_measurement_id
from contracts.chain import EMBEDDED, Chain, connect
from contracts.client import Transactor, register
from contracts.errors import RevertError
from contracts.zk import (
    AUTOMATA_TCB_STATUS,
    ReceiptParameters,
    ZkEvidence,
    ZkPolicy,
    deploy_receipt_verifier,
    deploy_zk_verifier,
    send_verify_receipt,
    verify_evidence,
    verify_receipt,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "zk-samples"
GAS_GOAL = 350_000
DAY = 86_400
# A contract whose code is one STOP: every call succeeds. It stands in for the receipt verifier
# where a test is about the journal's opening, since nobody here can prove a new journal.
ACCEPT_ALL_INITCODE = bytes.fromhex("6001600c60003960016000f300")


def _sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return doc


V5 = _sample("risc0_groth16_receipt_v5.json")
AUTOMATA = _sample("automata_dcap_risc0_receipt.json")
SEAL = bytes.fromhex(AUTOMATA["seal"])
JOURNAL = bytes.fromhex(AUTOMATA["journal"])
IMAGE_ID = bytes.fromhex(AUTOMATA["image_id"])


def _params(sample: dict[str, Any]) -> ReceiptParameters:
    return ReceiptParameters(
        bytes.fromhex(sample["control_root"]), bytes.fromhex(sample["bn254_control_id"])
    )


def _tagged(tag: bytes, down: list[bytes], data: bytes = b"") -> bytes:
    """RISC Zero's tagged struct hash (zk-samples README)."""
    head = hashlib.sha256(tag).digest()
    return hashlib.sha256(head + b"".join(down) + data + len(down).to_bytes(2, "little")).digest()


def _claim_digest(image_id: bytes, journal: bytes) -> bytes:
    halted = bytes.fromhex("a3acc27117418996340b84e5a90f3ef4c49d22c79e44aad822ec9c313e1eb8e2")
    output = _tagged(b"risc0.Output", [hashlib.sha256(journal).digest(), bytes(32)])
    return _tagged(b"risc0.ReceiptClaim", [bytes(32), image_id, halted, output], bytes(8))


@dataclass(frozen=True)
class Journal:
    """Automata's journal, read field by field from its published layout."""

    raw: bytes

    @property
    def body(self) -> bytes:
        return self.raw[13 : 13 + 584]

    def td_field(self, offset: int, size: int) -> bytes:
        return self.body[offset : offset + size]

    @property
    def tail(self) -> bytes:
        return self.raw[2 + int.from_bytes(self.raw[:2], "big") :]

    @property
    def platform(self) -> bytes:
        """TDATTRIBUTES, XFAM, MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG, RTMR0-2."""
        sizes = [("tdattributes", 120, 8), ("xfam", 128, 8)]
        sizes += [(f"m{i}", 136 + 48 * i, 48) for i in range(7)]
        return keccak(b"".join(self.td_field(off, size) for _, off, size in sizes))

    def with_td(self, *, rtmr3: bytes | None = None, report_data: bytes | None = None) -> Journal:
        raw = bytearray(self.raw)
        if rtmr3 is not None:
            raw[13 + 472 : 13 + 520] = rtmr3
        if report_data is not None:
            raw[13 + 520 : 13 + 584] = report_data
        return Journal(bytes(raw))


REAL = Journal(JOURNAL)
COLLATERAL_TIME = int.from_bytes(REAL.tail[:8], "big")


def _intel_root_tbs_hash() -> bytes:
    der = (files("attestation") / "data" / "intel_sgx_root_ca.der").read_bytes()
    return keccak(x509.load_der_x509_certificate(der).tbs_certificate_bytes)


@dataclass
class Env:
    chain: Chain
    tx: Transactor
    owner: LocalAccount

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def policy(self, **changes: Any) -> ZkPolicy:
        """Accepts the real receipt: Automata's guest, Intel's root, its status (OutOfDate), its
        platform, and an age that reaches back to its collateral time plus 30 days."""
        base = ZkPolicy(
            image_id=IMAGE_ID,
            intel_root_ca_hash=_intel_root_tbs_hash(),
            max_age=self.now() - COLLATERAL_TIME + 30 * DAY,
            tcb_statuses=(AUTOMATA_TCB_STATUS["OutOfDate"],),
            platforms=(REAL.platform,),
        )
        return replace(base, **changes)

    def groth16(self, sample: dict[str, Any] = AUTOMATA) -> str:
        return deploy_receipt_verifier(self.tx, self.owner, _params(sample))

    def accept_all(self) -> str:
        w3 = self.chain.w3
        tx: dict[str, Any] = {
            "from": self.owner.address,
            "data": ACCEPT_ALL_INITCODE,
            "nonce": w3.eth.get_transaction_count(self.owner.address, "pending"),
            "chainId": self.chain.chain_id,
            "gas": 100_000,
            "gasPrice": w3.eth.gas_price * 2,
        }
        signed = self.owner.sign_transaction(tx)
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(signed.raw_transaction)
        )
        return str(receipt["contractAddress"])

    def reverts(self, contract: str, address: str, fn: str, *args: Any) -> RevertError:
        """The revert of sending `fn(*args)` (decoded at gas estimation, on both chains)."""
        call = getattr(self.tx.contract(contract, address).functions, fn)(*args)
        with pytest.raises(RevertError) as refused:
            self.tx.send(self.owner, call)
        return refused.value


@pytest.fixture(params=[EMBEDDED, pytest.param("anvil", marks=pytest.mark.anvil)])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if request.param == EMBEDDED:
        chain = connect()
        yield Env(chain, Transactor(chain), chain.dev_accounts()[0])
        return
    chain = connect(request.getfixturevalue("anvil").url)
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])  # type: ignore[arg-type]
    yield Env(chain, Transactor(chain), chain.dev_accounts()[0])
    chain.w3.provider.make_request("evm_revert", [snapshot["result"]])  # type: ignore[arg-type]


# --- RiscZeroGroth16Verifier -------------------------------------------------------------------


@pytest.mark.parametrize("sample", [V5, AUTOMATA], ids=["risc0-v5", "automata-dcap"])
def test_groth16_verifier_accepts_real_receipt(env: Env, sample: dict[str, Any]) -> None:
    verifier = env.tx.contract("RiscZeroGroth16Verifier", env.groth16(sample))
    seal, journal = bytes.fromhex(sample["seal"]), bytes.fromhex(sample["journal"])
    image_id = bytes.fromhex(sample["image_id"])
    assert env.tx.call(verifier.functions.SELECTOR()) == seal[:4]
    claim = env.tx.call(verifier.functions.claimDigest(image_id, hashlib.sha256(journal).digest()))
    assert claim == _claim_digest(image_id, journal)
    env.tx.call(verifier.functions.verify(seal, image_id, hashlib.sha256(journal).digest()))


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def _negate_a(seal: bytes) -> bytes:
    q = 0x30644E72E131A029B85045B68181585D97816A916871CA8D3C208C16D87CFD47
    y = int.from_bytes(seal[36:68], "big")
    return seal[:36] + ((q - y) % q).to_bytes(32, "big") + seal[68:]


@pytest.mark.parametrize(
    ("seal", "image_id", "journal", "error"),
    [
        (_flip(SEAL, 3), IMAGE_ID, JOURNAL, "SelectorMismatch"),
        (_flip(SEAL, 4 + 31), IMAGE_ID, JOURNAL, "ProofMalformed"),
        (_negate_a(SEAL), IMAGE_ID, JOURNAL, "ProofRejected"),
        (SEAL[:-1], IMAGE_ID, JOURNAL, "SealLengthInvalid"),
        (SEAL, _flip(IMAGE_ID, 0), JOURNAL, "ProofRejected"),
        (SEAL, IMAGE_ID, _flip(JOURNAL, 500), "ProofRejected"),
    ],
    ids=["selector-bit", "proof-bit", "proof-negated", "seal-short", "image-bit", "journal-bit"],
)
def test_groth16_verifier_rejects_tampered_receipt(
    env: Env, seal: bytes, image_id: bytes, journal: bytes, error: str
) -> None:
    digest = hashlib.sha256(journal).digest()
    refused = env.reverts(
        "RiscZeroGroth16Verifier", env.groth16(), "verify", seal, image_id, digest
    )
    assert refused.error_name == error
    if error == "SelectorMismatch":
        assert refused.args_decoded == (seal[:4], SEAL[:4])


# --- ZkAttestationVerifier with the real receipt ----------------------------------------------


def test_zk_verifier_reads_the_real_journal_as_its_layout_says(env: Env) -> None:
    policy = env.policy()
    verifier = deploy_zk_verifier(env.tx, env.owner, env.groth16(), policy)
    td = verify_receipt(env.tx, verifier, SEAL, JOURNAL)
    assert td.tcb_status == REAL.raw[6] == AUTOMATA_TCB_STATUS["OutOfDate"]
    assert td.fmspc == REAL.raw[7:13] == bytes.fromhex("00806f050000")
    assert td.td_attributes == REAL.td_field(120, 8)
    assert td.platform == REAL.platform
    assert td.rtmr3 == REAL.td_field(472, 48)
    assert td.report_data == REAL.td_field(520, 64)
    assert td.collateral_time == COLLATERAL_TIME == 1_749_095_100
    assert td.root_ca_hash == REAL.tail[8 + 64 : 8 + 96] == _intel_root_tbs_hash()
    assert td.journal_digest == hashlib.sha256(JOURNAL).digest()
    assert td.expires_at == COLLATERAL_TIME + policy.max_age


def test_zk_verifier_accepts_real_receipt_up_to_its_unbound_report_data(env: Env) -> None:
    """The real quote's REPORTDATA is 64 zero bytes: it binds no key, so no worker can be
    registered from it. Reaching that check means receipt, root, time and policy all passed."""
    assert REAL.td_field(520, 64) == bytes(64)
    verifier = deploy_zk_verifier(env.tx, env.owner, env.groth16(), env.policy())
    evidence = _evidence(REAL, worker="0x" + "11" * 20)
    refused = env.reverts("ZkAttestationVerifier", verifier, "verify", evidence.encode())
    assert refused.error_name == "ReportDataNotBound"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"seal": _flip(SEAL, 4 + 31)}, "ProofMalformed"),
        ({"seal": _flip(SEAL, 0)}, "SelectorMismatch"),
        ({"journal": _flip(JOURNAL, 13 + 200)}, "ProofRejected"),
        ({"image_id": _flip(IMAGE_ID, 31)}, "ProofRejected"),
    ],
    ids=["seal-proof", "seal-selector", "journal", "image-id"],
)
def test_zk_verifier_rejects_tampered_real_receipt(
    env: Env, change: dict[str, bytes], error: str
) -> None:
    policy = env.policy(image_id=change.get("image_id", IMAGE_ID))
    verifier = deploy_zk_verifier(env.tx, env.owner, env.groth16(), policy)
    seal, journal = change.get("seal", SEAL), change.get("journal", JOURNAL)
    refused = env.reverts("ZkAttestationVerifier", verifier, "verifyReceipt", seal, journal)
    assert refused.error_name == error


@pytest.mark.slow
def test_zk_receipt_verification_gas_is_within_goal(env: Env) -> None:
    verifier = deploy_zk_verifier(env.tx, env.owner, env.groth16(), env.policy())
    receipt = send_verify_receipt(env.tx, env.owner, verifier, SEAL, JOURNAL)
    assert receipt["gasUsed"] <= GAS_GOAL, receipt["gasUsed"]


# --- the opening of REPORTDATA and RTMR3 (receipt verifier stood in) ---------------------------

WORKER_X25519 = bytes(range(32))
NONCE = b"\x5a" * 32
BUNDLE = hashlib.sha384(b"enclava/test/agent-bundle").digest()
BEFORE = (RuntimeEvent.create("boot", b"os"), RuntimeEvent.create("app-id", b"enclava"))
AGENT = agent_event("embedder", "1.0.0", BUNDLE)
AFTER = (RuntimeEvent.create("enclava.hlo", b"\x01" * 48),)


def _rtmr3(events: tuple[RuntimeEvent, ...]) -> bytes:
    register_value = bytes(48)
    for event in events:
        register_value = extend(register_value, event.digest)
    return register_value


def _worker_journal(worker: LocalAccount, agent: RuntimeEvent = AGENT) -> Journal:
    """The real journal with REPORTDATA and RTMR3 as an Enclava worker image would write them."""
    report_data = worker_report_data(bytes.fromhex(worker.address[2:]), WORKER_X25519, NONCE)
    return REAL.with_td(rtmr3=_rtmr3((*BEFORE, agent, *AFTER)), report_data=report_data)


def _evidence(journal: Journal, *, worker: str, **changes: Any) -> ZkEvidence:
    base = ZkEvidence(
        seal=SEAL,
        journal=journal.raw,
        worker=worker,
        x25519_public=WORKER_X25519,
        nonce=NONCE,
        rtmr3_before=_rtmr3(BEFORE),
        agent_payload=AGENT.payload,
        later_digests=tuple(e.digest for e in AFTER),
    )
    return replace(base, **changes)


def test_zk_verifier_opens_report_data_and_rtmr3_and_registry_registers_the_worker(
    env: Env,
) -> None:
    worker = env.chain.dev_accounts()[1]
    journal = _worker_journal(worker)
    policy = env.policy()
    verifier = deploy_zk_verifier(env.tx, env.owner, env.accept_all(), policy)
    attested = verify_evidence(env.tx, verifier, _evidence(journal, worker=worker.address))
    assert attested.worker == worker.address
    assert attested.measurement == agent_measurement_id(BUNDLE)
    assert attested.expires_at == COLLATERAL_TIME + policy.max_age
    assert attested.quote_hash == hashlib.sha256(journal.raw).digest()

    registry = env.tx.deploy(env.owner, "WorkerRegistry", verifier, env.owner.address)
    evidence = _evidence(journal, worker=worker.address).encode()
    registration = register(env.tx, env.owner, str(registry.address), evidence)
    assert registration.measurement == agent_measurement_id(BUNDLE)
    fn = registry.functions.isRegistered(worker.address, agent_measurement_id(BUNDLE))
    assert env.tx.call(fn) is True


def test_zk_verifier_reads_a_long_agent_payload(env: Env) -> None:
    """A payload over two SHA-384 blocks (a long agent name) hashes the same as hashlib's."""
    worker = env.chain.dev_accounts()[1]
    agent = agent_event("a" * 200, "2.0.0", BUNDLE)
    verifier = deploy_zk_verifier(env.tx, env.owner, env.accept_all(), env.policy())
    evidence = _evidence(_worker_journal(worker, agent), worker=worker.address)
    attested = verify_evidence(env.tx, verifier, replace(evidence, agent_payload=agent.payload))
    assert attested.measurement == agent_measurement_id(BUNDLE)


def _hlo_payload() -> bytes:
    """The agent event's payload under another event name: the same bytes, another digest."""
    return RuntimeEvent.create("enclava.hlo", AGENT.payload).payload


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"worker": "0x" + "22" * 20}, "ReportDataNotBound"),
        ({"nonce": b"\x00" * 32}, "ReportDataNotBound"),
        ({"later_digests": ()}, "Rtmr3Mismatch"),
        ({"rtmr3_before": bytes(48)}, "Rtmr3Mismatch"),
        ({"agent_payload": AGENT.payload.replace(b'"name":"embedder"', b'"name":"embedded"')},
         "Rtmr3Mismatch"),
        ({"agent_payload": AGENT.payload.replace(BUNDLE.hex().encode(),
                                                 BUNDLE.hex().upper().encode())},
         "AgentPayloadMalformed"),
        ({"agent_payload": AGENT.payload[:100]}, "AgentPayloadMalformed"),
        ({"rtmr3_before": bytes(47)}, "EventChainMalformed"),
    ],
    ids=["other-worker", "other-nonce", "missing-later-event", "wrong-before", "other-payload",
         "uppercase-hex", "short-payload", "short-rtmr"],
)  # fmt: skip
def test_zk_verifier_rejects_openings_that_do_not_match(
    env: Env, change: dict[str, Any], error: str
) -> None:
    worker = env.chain.dev_accounts()[1]
    verifier = deploy_zk_verifier(env.tx, env.owner, env.accept_all(), env.policy())
    evidence = _evidence(_worker_journal(worker), **{"worker": worker.address, **change})
    refused = env.reverts("ZkAttestationVerifier", verifier, "verify", evidence.encode())
    assert refused.error_name == error


def _debug(journal: Journal) -> bytes:
    return journal.raw[: 13 + 120] + b"\x01" + journal.raw[13 + 121 :]


def _future(journal: Journal) -> bytes:
    """The collateral time moved to 2100."""
    at = len(journal.raw) - len(journal.tail)
    return journal.raw[:at] + (4_102_444_800).to_bytes(8, "big") + journal.raw[at + 8 :]


@pytest.mark.parametrize(
    ("policy_change", "journal", "error"),
    [
        ({"tcb_statuses": (AUTOMATA_TCB_STATUS["UpToDate"],)}, JOURNAL, "TcbStatusRejected"),
        ({"platforms": (bytes(32),)}, JOURNAL, "UnknownPlatform"),
        ({"intel_root_ca_hash": bytes(32)}, JOURNAL, "UntrustedRootCa"),
        ({"max_age": 1}, JOURNAL, "AttestationExpired"),
        ({}, _debug(REAL), "DebugTd"),
        ({}, _future(REAL), "CollateralFromFuture"),
        ({}, JOURNAL[:13] + b"\x00" * 3 + JOURNAL[13:], "JournalMalformed"),
        ({}, JOURNAL[:4] + b"\x00\x01" + JOURNAL[6:], "UnsupportedQuoteBody"),
    ],
    ids=["tcb-status", "platform", "root-ca", "expired", "debug", "future", "lengths", "sgx-body"],
)
def test_zk_verifier_policy_refuses(
    env: Env, policy_change: dict[str, Any], journal: bytes, error: str
) -> None:
    verifier = deploy_zk_verifier(env.tx, env.owner, env.accept_all(), env.policy(**policy_change))
    refused = env.reverts("ZkAttestationVerifier", verifier, "verifyReceipt", SEAL, journal)
    assert refused.error_name == error
