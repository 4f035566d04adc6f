"""`enclava verify --tx HASH` against a real Anvil node: a past fulfilment, its signer's
registration and the registered (simulated) quote, verified offline with the simulator's
collateral and root."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from typer.testing import CliRunner

from agents.builtin import builtin_bundle
from agents.bundle import measure
from agents.runtime import AgentRuntime
from attestation.binding import worker_report_data
from attestation.token import agent_measurement_id
from contracts.anvil import AnvilNode
from contracts.chain import Chain
from contracts.client import (
    AgentClient,
    Deployment,
    RequestInfo,
    Transactor,
    create_agent,
    deploy,
    register,
)
from contracts.typed_data import Verdict, fulfillment_message, verdict_evidence, verdict_message
from enclava.cli import app
from enclava.devstack import serve_in_thread
from enclava.gateway_commands import build_app
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx
from tests.enclave.conftest import SUM_BUNDLE

pytestmark = pytest.mark.anvil
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
    _register(chain, tx, owner, signer, worker.address, stack, measurement, quote)
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
        "state": str(tmp),
        "agent": client.address,
        "registry": stack.registry,
        "verifier": stack.verifier,
        "measurement": measurement.hex(),
    }


def _register(
    chain: Chain,
    tx: Transactor,
    owner: LocalAccount,
    signer: LocalAccount,
    worker: str,
    stack: Deployment,
    measurement: bytes,
    quote: bytes,
) -> None:
    expires = int(chain.w3.eth.get_block("latest")["timestamp"]) + 86_400
    verdict = Verdict(worker, measurement, "UpToDate", hashlib.sha256(quote).digest(), expires)
    message = verdict_message(verdict, chain_id=chain.chain_id, verifier=stack.verifier)
    evidence = verdict_evidence(verdict, bytes(signer.sign_message(message).signature))
    register(tx, owner, stack.registry, evidence)


def _request_tx(chain: Chain, client: AgentClient, caller: LocalAccount) -> str:
    """A transaction to the agent that is not a fulfilment (a plain request)."""
    receipt = client.tx.send(caller, client.contract.functions.request(b"{}"), client.price())
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _verify(
    node: AnvilNode, setup: dict[str, str], tx: str, quote: str, *extra: str
) -> tuple[int, dict]:  # type: ignore[type-arg]
    args = ["verify", "--tx", tx, "--rpc-url", node.url, quote, "--allow-simulated", *extra]
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


def _signed(chain: Chain, agent: str, req: RequestInfo, sign: Callable[[Any], bytes]) -> bytes:
    message = fulfillment_message(
        chain_id=chain.chain_id,
        agent=agent,
        request_id=req.id,
        input_hash=req.input_hash,
        output_hash=keccak(OUTPUT),
    )
    return sign(message)


def _account_signer(account: LocalAccount) -> Callable[[Any], bytes]:
    return lambda message: bytes(account.sign_message(message).signature)


@pytest.fixture(scope="module")
def batches(chain: Chain, setup: dict[str, str]) -> dict[str, Any]:
    """Two `fulfillBatch` transactions: three requests answered by the setup's worker, and two
    answered by two different registered workers."""
    owner, signer, worker, caller, other, *_ = chain.dev_accounts()
    tx = Transactor(chain)
    client = AgentClient(tx, setup["agent"])
    stack = Deployment(setup["verifier"], setup["registry"], "")
    measurement = bytes.fromhex(setup["measurement"])
    _register(chain, tx, owner, signer, other.address, stack, measurement, b"another quote")
    reqs = [client.request(caller, b'{"n":%d}' % i) for i in range(5)]
    by = {r.id: _account_signer(worker if i != 4 else other) for i, r in enumerate(reqs)}
    items = [(r, OUTPUT, _signed(chain, client.address, r, by[r.id])) for r in reqs]
    same = client.fulfill_batch(owner, items[:3])
    mixed = client.fulfill_batch(owner, items[3:])
    return {
        "same": "0x" + bytes(same["transactionHash"]).hex(),
        "same_ids": [r.id for r in reqs[:3]],
        "mixed": "0x" + bytes(mixed["transactionHash"]).hex(),
        "mine": reqs[3].id,
        "theirs": reqs[4].id,
    }


def test_batch_fulfilment_verifies_every_request(
    node: AnvilNode, setup: dict[str, str], batches: dict[str, Any]
) -> None:
    code, doc = _verify(node, setup, batches["same"], setup["quote"])

    assert code == 0, doc
    assert doc["request_ids"] == doc["fulfilled_request_ids"] == batches["same_ids"]
    signatures = [s for s in doc["steps"] if s["step"].startswith("signature[")]
    assert [s["step"] for s in signatures] == [f"signature[{i}]" for i in batches["same_ids"]]
    assert all(s["status"] == "pass" for s in doc["steps"])


def test_request_id_picks_one_fulfilment_of_a_batch(
    node: AnvilNode, setup: dict[str, str], batches: dict[str, Any]
) -> None:
    chosen = batches["same_ids"][1]
    code, doc = _verify(node, setup, batches["same"], setup["quote"], "--request-id", str(chosen))

    assert code == 0, doc
    assert doc["request_ids"] == [chosen]
    assert doc["fulfilled_request_ids"] == batches["same_ids"]
    assert [s["step"] for s in doc["steps"] if s["step"].startswith("sig")] == [
        f"signature[{chosen}]"
    ]


def test_batch_of_several_workers_needs_a_request_id(
    node: AnvilNode, setup: dict[str, str], batches: dict[str, Any]
) -> None:
    code, doc = _verify(node, setup, batches["mixed"], setup["quote"])
    assert code == 1, doc
    (one_worker,) = [s for s in doc["steps"] if s["step"] == "one_worker"]
    assert one_worker["status"] == "fail" and "--request-id" in one_worker["detail"]

    mine = str(batches["mine"])
    code, doc = _verify(node, setup, batches["mixed"], setup["quote"], "--request-id", mine)
    assert code == 0, doc
    assert doc["worker"] == setup["worker"] and doc["request_ids"] == [batches["mine"]]

    theirs = str(batches["theirs"])
    code, doc = _verify(node, setup, batches["mixed"], setup["quote"], "--request-id", theirs)
    assert code == 1, doc
    assert [s["step"] for s in doc["steps"] if s["status"] == "fail"] == ["quote_hash"]


def test_request_id_not_in_the_transaction_is_bad_input(
    node: AnvilNode, setup: dict[str, str], batches: dict[str, Any]
) -> None:
    code, doc = _verify(node, setup, batches["same"], setup["quote"], "--request-id", "999")
    assert code == 2
    assert doc["error"]["code"] == "not_a_fulfilment"


@pytest.fixture(scope="module")
def gateway(chain: Chain, setup: dict[str, str]) -> Iterator[dict[str, str]]:
    """A live gateway of a simulated worker on the setup's machine, registered for the agent,
    and one request it fulfilled (signed with its enclave key)."""
    owner, signer, _, caller, *_ = chain.dev_accounts()
    sim = SimulatedTdx(Path(setup["state"]) / "sim", now=datetime.now(UTC))
    keys = EnclaveKeys.generate()
    tx = Transactor(chain)
    stack = Deployment(setup["verifier"], setup["registry"], "")
    measurement = bytes.fromhex(setup["measurement"])
    _register(chain, tx, owner, signer, keys.address, stack, measurement, b"registered quote")
    client = AgentClient(tx, setup["agent"])
    req = client.request(caller, b'{"text":"gateway"}')
    receipt = client.fulfill(
        owner, req, OUTPUT, _signed(chain, client.address, req, keys.sign_message)
    )
    with AgentRuntime.load(SUM_BUNDLE) as runtime:
        app_ = build_app(sim, keys, {"sum": runtime}, chain.chain_id)
        with serve_in_thread(app_) as url:
            yield {"url": url, "fulfil_tx": "0x" + bytes(receipt["transactionHash"]).hex()}


def _verify_url(node: AnvilNode, setup: dict[str, str], tx: str, url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    args = ["verify", "--tx", tx, "--rpc-url", node.url, "--url", url]
    result = runner.invoke(app, [*args, "--allow-simulated", "--state", setup["state"], "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_fresh_quote_of_the_fulfilling_worker_verifies(
    node: AnvilNode, setup: dict[str, str], gateway: dict[str, str]
) -> None:
    code, doc = _verify_url(node, setup, gateway["fulfil_tx"], gateway["url"])

    assert code == 0, doc
    steps = {s["step"]: s["status"] for s in doc["steps"]}
    assert "quote_hash" not in steps  # a fresh quote never has the registered hash
    assert {"gateway_worker", "binding", "event_log", "quote", "registration"} <= set(steps)
    assert set(steps.values()) == {"pass"}


def test_gateway_of_another_worker_is_rejected(
    node: AnvilNode, setup: dict[str, str], gateway: dict[str, str]
) -> None:
    code, doc = _verify_url(node, setup, setup["fulfil_tx"], gateway["url"])

    assert code == 1, doc
    assert [s["step"] for s in doc["steps"] if s["status"] == "fail"] == ["gateway_worker"]
