"""`enclava verify --tx HASH` against a real Anvil node: a past fulfilment, its signer's
registration and the registered (simulated) quote, verified offline with the simulator's
collateral and root."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from typer.testing import CliRunner

from agents.builtin import builtin_bundle
from agents.bundle import measure
from attestation.binding import worker_report_data
from attestation.token import agent_measurement_id
from contracts.anvil import AnvilNode
from contracts.chain import Chain
from contracts.client import AgentClient, Transactor, create_agent, deploy, register
from contracts.typed_data import Verdict, fulfillment_message, verdict_evidence, verdict_message
from enclava.cli import app
from enclave.tee.sim import SimulatedTdx

runner = CliRunner()
OUTPUT = b'{"answer":42}'


@pytest.fixture(scope="module")
def setup(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A registered worker (quoteHash = SHA-256 of its simulated quote), one fulfilled request;
    the files and hashes the tests need."""
    owner, signer, worker, caller, *_ = chain.dev_accounts()
    tmp = tmp_path_factory.mktemp("verify-tx")
    now = datetime.now(UTC)
    sim = SimulatedTdx(tmp / "sim", now=now)
    quote = sim.quote(
        worker_report_data(bytes.fromhex(worker.address[2:]), b"\x01" * 32, b"\x02" * 32)
    )
    other = sim.quote(
        worker_report_data(bytes.fromhex(worker.address[2:]), b"\x03" * 32, b"\x04" * 32)
    )
    files = {"quote": tmp / "q.bin", "other": tmp / "other.bin", "coll": tmp / "c.json"}
    files["quote"].write_bytes(quote)
    files["other"].write_bytes(other)
    files["coll"].write_text(sim.collateral(now=now).to_json())
    root = tmp / "root.pem"
    root.write_bytes(sim.trust_anchor.certificate.public_bytes(serialization.Encoding.PEM))

    tx = Transactor(chain)
    stack = deploy(tx, owner, [signer.address])
    measurement = agent_measurement_id(measure(builtin_bundle("embed")).digest)
    client = create_agent(
        tx,
        owner,
        stack.factory,
        measurement=measurement,
        price=1000,
        royalty_bps=1000,
        registry=stack.registry,
        timeout=3600,
    )
    _register(chain, tx, owner, signer, worker, stack.registry, stack.verifier, measurement, quote)
    req = client.request(caller, b'{"text":"hi"}')
    message = fulfillment_message(
        chain_id=chain.chain_id,
        agent=client.address,
        request_id=req.id,
        input_hash=req.input_hash,
        output_hash=keccak(OUTPUT),
    )
    receipt = client.fulfill(worker, req, OUTPUT, bytes(worker.sign_message(message).signature))
    return {
        "fulfil_tx": "0x" + bytes(receipt["transactionHash"]).hex(),
        "request_tx": _request_tx(chain, client, caller),
        "quote": str(files["quote"]),
        "other": str(files["other"]),
        "coll": str(files["coll"]),
        "root": str(root),
        "worker": worker.address,
    }


def _register(
    chain: Chain,
    tx: Transactor,
    owner: LocalAccount,
    signer: LocalAccount,
    worker: LocalAccount,
    registry: str,
    verifier: str,
    measurement: bytes,
    quote: bytes,
) -> None:
    expires = int(chain.w3.eth.get_block("latest")["timestamp"]) + 86_400
    verdict = Verdict(
        worker.address, measurement, "UpToDate", hashlib.sha256(quote).digest(), expires
    )
    message = verdict_message(verdict, chain_id=chain.chain_id, verifier=verifier)
    evidence = verdict_evidence(verdict, bytes(signer.sign_message(message).signature))
    register(tx, owner, registry, evidence)


def _request_tx(chain: Chain, client: AgentClient, caller: LocalAccount) -> str:
    """A transaction to the agent that is not a fulfilment (a plain request)."""
    receipt = client.tx.send(caller, client.contract.functions.request(b"{}"), client.price())
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _verify(node: AnvilNode, setup: dict[str, str], tx: str, quote: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    args = ["verify", "--tx", tx, "--rpc-url", node.url, quote, "--allow-simulated"]
    args += ["--collateral", setup["coll"], "--root", setup["root"], "--json"]
    result = runner.invoke(app, args)
    return result.exit_code, json.loads(result.stdout)


def test_registered_quote_verifies_the_fulfilment(node: AnvilNode, setup: dict[str, str]) -> None:
    code, doc = _verify(node, setup, setup["fulfil_tx"], setup["quote"])
    assert code == 0, doc
    assert doc["verified"] is True and doc["worker"] == setup["worker"]
    names = [s["step"] for s in doc["steps"]]
    assert names[:2] == ["fulfilled", "one_worker"]
    assert {"registration", "quote_hash", "quote"} <= set(names)
    assert all(s["status"] == "pass" for s in doc["steps"])


def test_human_report(node: AnvilNode, setup: dict[str, str]) -> None:
    args = ["verify", "--tx", setup["fulfil_tx"], "--rpc-url", node.url, setup["quote"]]
    args += ["--allow-simulated", "--collateral", setup["coll"], "--root", setup["root"]]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "quote_hash:" in result.stdout and "verified" in result.stdout


def test_another_quote_fails_the_hash_check(node: AnvilNode, setup: dict[str, str]) -> None:
    code, doc = _verify(node, setup, setup["fulfil_tx"], setup["other"])
    assert code == 1, doc
    failed = [s["step"] for s in doc["steps"] if s["status"] == "fail"]
    assert failed == ["quote_hash"]


def test_a_transaction_that_is_not_a_fulfilment_is_bad_input(
    node: AnvilNode, setup: dict[str, str]
) -> None:
    code, doc = _verify(node, setup, setup["request_tx"], setup["quote"])
    assert code == 2
    assert doc["error"]["code"] == "not_a_fulfilment"


def test_unknown_transaction_and_missing_rpc_are_bad_input(
    node: AnvilNode, setup: dict[str, str]
) -> None:
    code, doc = _verify(node, setup, "0x" + secrets.token_hex(32), setup["quote"])
    assert code == 2 and doc["error"]["code"] == "bad_input"
    result = runner.invoke(app, ["verify", "--tx", setup["fulfil_tx"], setup["quote"], "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "bad_usage"


def test_unreachable_rpc_is_bad_input(setup: dict[str, str]) -> None:
    args = ["verify", "--tx", setup["fulfil_tx"], "--rpc-url", "http://127.0.0.1:9", setup["quote"]]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "chain_unavailable"
