"""Gas used by the contracts' transactions, against the issue's goals, on the embedded chain.

Deploys the committed artifacts on web3's `EthereumTesterProvider` (py-evm, Prague) and measures,
for 32-byte and 1-KiB inputs and outputs:

* `AgentFactory` deploy and one agent clone deploy (`createAgent`);
* `WorkerRegistry.register` through `SignedVerdictVerifier` (a fresh worker; the EIP-712 verdict
  is signed in Python with eth_account);
* `request`, `fulfill`, `fulfillBatch` of 10 (per request), `cancel` and `withdraw`;
* `ZkAttestationVerifier.verifyReceipt` of Automata's real RISC Zero receipt of a TDX quote's DCAP
  verification (tests/data/zk-samples): the Groth16 proof (BN254 precompiles), the journal read
  and the image policy, sent as a transaction.

Every figure is the `gasUsed` of one standalone transaction (so the registry, the agent's slots
and the credit slots are cold, as in real use), after a warm-up that puts the agent in steady
state: the worker and the owner already hold some credit, the request counter is non-zero. The
fulfilments are signed in Python (eth_account EIP-712) and submitted by a separate relayer
account; who sends the transaction does not change its gas. Each measured transaction must
succeed or the bench fails.

    python bench/gas.py [--json]

`--json` makes the last line one JSON object: `request`, `fulfill`, `fulfill_batch_per_request`,
`agent_deploy`, `register`, `cancel`, `withdraw`, `factory_deploy` (32-byte payloads), the same
with a `_1k` suffix for 1-KiB payloads, `zk_verify_gas`, and `goals` / `pass`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt, Wei

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.artifacts import load

BATCH = 10
PRICE = 10**15
ROYALTY_BPS = 1_000
TIMEOUT_S = 3_600
MEASUREMENT = keccak(b"enclava/bench/agent-measurement")
QUOTE_HASH = keccak(b"enclava/bench/quote")
TCB_UP_TO_DATE = 0
# Fixed keys so runs are reproducible; they exist only on the throwaway embedded chain.
ATTESTATION_KEY = keccak(b"enclava/bench/attestation-service")
WORKER_KEY = keccak(b"enclava/bench/worker")
GOALS = {
    "request": 60_000,
    "fulfill": 60_000,
    "fulfill_batch_per_request": 35_000,
    "agent_deploy": 150_000,
    "zk_verify_gas": 350_000,
}
ZK_RECEIPT = (
    Path(__file__).resolve().parents[1] / "tests/data/zk-samples/automata_dcap_risc0_receipt.json"
)
SIZES = {"": 32, "_1k": 1024}


class BenchError(RuntimeError):
    """A measured transaction failed or returned something unexpected."""


@dataclass(frozen=True)
class Req:
    """A request's fields, as the `Requested` event gives them to the worker."""

    id: int
    caller: ChecksumAddress
    fee: int
    deadline: int
    input_hash: bytes

    def as_tuple(self) -> tuple[ChecksumAddress, int, int, bytes]:
        return (self.caller, self.fee, self.deadline, self.input_hash)


class Chain:
    """The embedded chain, the deployed contracts and the accounts that drive them."""

    def __init__(self) -> None:
        self.w3 = Web3(EthereumTesterProvider())
        accounts: list[ChecksumAddress] = list(self.w3.eth.accounts)
        self.deployer = accounts[0]
        self.caller = accounts[1]
        self.owner = accounts[2]
        self.relayer = accounts[3]
        self.attestation: LocalAccount = Account.from_key(ATTESTATION_KEY)
        self.worker: LocalAccount = Account.from_key(WORKER_KEY)
        self.gas: dict[str, int] = {}
        verifier = self.deploy("SignedVerdictVerifier", self.deployer, [self.attestation.address])
        self.registry = self.deploy("WorkerRegistry", verifier.address, self.deployer)
        self.verifier = verifier
        self.factory = self.deploy("AgentFactory", record="factory_deploy")
        receipt = self.send(
            self.factory.functions.createAgent(
                MEASUREMENT, PRICE, ROYALTY_BPS, self.registry.address, TIMEOUT_S
            ),
            self.owner,
        )
        self.gas["agent_deploy"] = receipt["gasUsed"]
        (created,) = self.factory.events.AgentCreated().process_receipt(receipt, errors=DISCARD)
        self.agent = self.contract("Agent", created["args"]["agent"])

    def contract(self, name: str, address: str) -> Contract:
        abi = load(name).abi
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    def deploy(self, name: str, *args: Any, record: str | None = None) -> Contract:
        artifact = load(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.receipt(factory.constructor(*args).transact({"from": self.deployer}))
        if record is not None:
            self.gas[record] = receipt["gasUsed"]
        address = receipt["contractAddress"]
        if address is None:
            raise BenchError(f"{name}: no contract address in the receipt")
        return self.contract(name, address)

    def receipt(self, tx_hash: HexBytes) -> TxReceipt:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise BenchError(f"transaction {tx_hash.hex()} reverted")
        return receipt

    def at_floor(self, receipt: TxReceipt) -> bool:
        """Whether the transaction paid the EIP-7623 calldata floor rather than its execution."""
        data = bytes(self.w3.eth.get_transaction(receipt["transactionHash"])["input"])
        tokens = data.count(0) + 4 * (len(data) - data.count(0))
        return receipt["gasUsed"] == 21_000 + 10 * tokens

    def send(self, call: ContractFunction, sender: ChecksumAddress, value: int = 0) -> TxReceipt:
        params: TxParams = {"from": sender, "value": Wei(value)}
        return self.receipt(call.transact(params))

    def register(self) -> int:
        """Registers the worker with a verdict the attestation service signed; returns gas."""
        expires_at = self.now() + 86_400
        verdict = {
            "worker": self.worker.address,
            "measurement": MEASUREMENT,
            "tcbStatus": TCB_UP_TO_DATE,
            "quoteHash": QUOTE_HASH,
            "expiresAt": expires_at,
        }
        signed = self.attestation.sign_message(
            encode_typed_data(
                domain_data=self.domain("Enclava SignedVerdictVerifier", self.verifier.address),
                message_types={
                    "Verdict": [
                        {"name": "worker", "type": "address"},
                        {"name": "measurement", "type": "bytes32"},
                        {"name": "tcbStatus", "type": "uint8"},
                        {"name": "quoteHash", "type": "bytes32"},
                        {"name": "expiresAt", "type": "uint64"},
                    ]
                },
                message_data=verdict,
            )
        )
        evidence = self.w3.codec.encode(
            ["address", "bytes32", "uint8", "bytes32", "uint64", "bytes"],
            [*verdict.values(), signed.signature],
        )
        receipt = self.send(self.registry.functions.register(evidence), self.relayer)
        if not self.registry.functions.isRegistered(self.worker.address, MEASUREMENT).call():
            raise BenchError("register succeeded but the worker is not registered")
        return receipt["gasUsed"]

    def domain(self, name: str, verifying_contract: str) -> dict[str, Any]:
        return {
            "name": name,
            "version": "1",
            "chainId": self.w3.eth.chain_id,
            "verifyingContract": verifying_contract,
        }

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def request(self, payload: bytes) -> tuple[Req, int]:
        receipt = self.send(self.agent.functions.request(payload), self.caller, PRICE)
        (event,) = self.agent.events.Requested().process_receipt(receipt)
        args = event["args"]
        req = Req(args["id"], args["caller"], args["fee"], args["deadline"], keccak(args["input"]))
        return req, receipt["gasUsed"]

    def fulfilment(self, req: Req, output: bytes) -> tuple[int, tuple[Any, ...], bytes, bytes]:
        """The arguments of `fulfill`, signed by the worker (EIP-712 `Fulfillment`)."""
        message = {"id": req.id, "inputHash": req.input_hash, "outputHash": keccak(output)}
        signable = encode_typed_data(
            domain_data=self.domain("Enclava Agent", self.agent.address),
            message_types={
                "Fulfillment": [
                    {"name": "id", "type": "uint256"},
                    {"name": "inputHash", "type": "bytes32"},
                    {"name": "outputHash", "type": "bytes32"},
                ]
            },
            message_data=message,
        )
        signed = self.worker.sign_message(signable)
        on_chain = self.agent.functions.fulfillmentDigest(*message.values()).call()
        if bytes(on_chain) != bytes(signed.message_hash):
            raise BenchError("the contract's Fulfillment digest differs from eth_account's")
        return (req.id, req.as_tuple(), output, bytes(signed.signature))

    def fulfill(self, req: Req, output: bytes) -> int:
        call = self.agent.functions.fulfill(*self.fulfilment(req, output))
        return self.send(call, self.relayer)["gasUsed"]

    def fulfill_batch(self, reqs: Sequence[Req], output: bytes) -> TxReceipt:
        items = [self.fulfilment(req, output) for req in reqs]
        receipt = self.send(self.agent.functions.fulfillBatch(items), self.relayer)
        if len(self.agent.events.Fulfilled().process_receipt(receipt)) != len(reqs):
            raise BenchError("fulfillBatch emitted the wrong number of Fulfilled events")
        return receipt

    def cancel(self, req: Req) -> int:
        """Cancels `req` after its deadline, its caller holding no credit before; returns gas."""
        if self.agent.functions.credits(req.caller).call():
            self.withdraw(req.caller)
        tester = self.w3.provider.ethereum_tester  # type: ignore[attr-defined]
        tester.time_travel(req.deadline + 1)
        tester.mine_block()
        receipt = self.send(self.agent.functions.cancel(req.id, req.as_tuple()), self.caller)
        if self.agent.functions.credits(req.caller).call() != req.fee:
            raise BenchError("cancel did not credit the fee back to the caller")
        return receipt["gasUsed"]

    def withdraw(self, account: ChecksumAddress) -> int:
        return self.send(self.agent.functions.withdraw(), account)["gasUsed"]

    def zk_verify(self) -> int:
        """Verifies Automata's receipt through a `ZkAttestationVerifier` whose policy accepts the
        receipt's own platform, TCB status and root; returns gas."""
        sample = json.loads(ZK_RECEIPT.read_text(encoding="utf-8"))
        seal, journal = bytes.fromhex(sample["seal"]), bytes.fromhex(sample["journal"])
        groth16 = self.deploy(
            "RiscZeroGroth16Verifier",
            bytes.fromhex(sample["control_root"]),
            bytes.fromhex(sample["bn254_control_id"]),
        )
        tail = 2 + int.from_bytes(journal[:2], "big")
        collateral_time = int.from_bytes(journal[tail : tail + 8], "big")
        verifier = self.deploy(
            "ZkAttestationVerifier",
            groth16.address,
            bytes.fromhex(sample["image_id"]),
            journal[tail + 72 : tail + 104],
            self.now() - collateral_time + 86_400,
            [journal[6]],
            [keccak(journal[133:485])],
        )
        return self.send(verifier.functions.verifyReceipt(seal, journal), self.relayer)["gasUsed"]


def measure() -> tuple[dict[str, int], set[str]]:
    """Runs the scenario once; returns gas by figure name and the figures at the calldata floor."""
    chain = Chain()
    floored: set[str] = set()
    chain.gas["register"] = chain.register()
    warm_req, _ = chain.request(b"\x01" * 32)
    chain.fulfill(warm_req, b"\x02" * 32)
    for suffix, size in SIZES.items():
        payload = bytes(range(256)) * (size // 256) if size >= 256 else bytes(range(1, size + 1))
        req, chain.gas[f"request{suffix}"] = chain.request(payload)
        chain.gas[f"fulfill{suffix}"] = chain.fulfill(req, payload)
        batch = [chain.request(payload)[0] for _ in range(BATCH)]
        receipt = chain.fulfill_batch(batch, payload)
        chain.gas[f"fulfill_batch_per_request{suffix}"] = receipt["gasUsed"] // BATCH
        if chain.at_floor(receipt):
            floored.add(f"fulfill_batch_per_request{suffix}")
        cancelled, _ = chain.request(payload)
        chain.gas[f"cancel{suffix}"] = chain.cancel(cancelled)
    chain.gas["withdraw"] = chain.withdraw(chain.owner)
    chain.gas["zk_verify_gas"] = chain.zk_verify()
    return chain.gas, floored


ROWS = (
    ("factory_deploy", "AgentFactory deploy (+ Agent implementation)"),
    ("agent_deploy", "createAgent (EIP-1167 clone + init)"),
    ("register", "register (SignedVerdictVerifier, fresh worker)"),
    ("request", "request"),
    ("fulfill", "fulfill (steady state, cold registry)"),
    ("fulfill_batch_per_request", f"fulfillBatch of {BATCH}, per request"),
    ("cancel", "cancel (caller holds no credit)"),
    ("withdraw", "withdraw (owner royalties)"),
    ("zk_verify_gas", "zk verifyReceipt (Automata receipt, Groth16)"),
)


def render(gas: dict[str, int], floored: set[str]) -> str:
    def cell(key: str) -> str:
        if key not in gas:
            return " " * 10
        return f"{gas[key]:>9,}" + ("*" if key in floored else " ")

    lines = [f"{'transaction':<48} {'32 B':>9}  {'1 KiB':>9}  {'goal':>9}  result", "-" * 86]
    for key, label in ROWS:
        goal = GOALS.get(key)
        goal_cell = f"{goal:>9,}" if goal else " " * 9
        verdict = ("pass" if gas[key] <= goal else "FAIL") if goal else ""
        lines.append(f"{label:<48} {cell(key)} {cell(key + '_1k')} {goal_cell}  {verdict}".rstrip())
    lines.append(
        "goals apply to the 32-byte payloads; gasUsed of each transaction (py-evm, Prague)"
    )
    if floored:
        lines.append(
            "* set by the EIP-7623 calldata floor (10 gas per calldata token), not by execution"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    gas, floored = measure()
    print(render(gas, floored))
    passed = {key: gas[key] <= goal for key, goal in GOALS.items()}
    if args.json:
        summary = {**gas, "goals": GOALS, "pass": passed, "calldata_floor": sorted(floored)}
        print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
