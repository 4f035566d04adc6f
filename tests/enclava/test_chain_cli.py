"""`enclava deploy-stack`, `deploy`, `call --chain` and `call-chain` (its deprecated alias) against
a real Anvil node."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from typer.testing import CliRunner

from agents.builtin import builtin_bundle
from agents.bundle import measure
from attestation.token import agent_measurement_id
from contracts.anvil import AnvilNode
from contracts.chain import Chain, connect
from contracts.client import AgentClient, Transactor, register, request_from_event
from contracts.events import EventReader
from contracts.typed_data import Verdict, fulfillment_message, verdict_evidence, verdict_message
from enclava.cli import app

pytestmark = pytest.mark.anvil
runner = CliRunner()
OUTPUT = b'{"answer":42}'


def _env(account: LocalAccount) -> dict[str, str]:
    return {"ENCLAVA_PRIVATE_KEY": "0x" + bytes(account.key).hex()}


def _invoke(args: list[str], account: LocalAccount | None) -> tuple[int, dict[str, object]]:
    env = _env(account) if account else {"ENCLAVA_PRIVATE_KEY": ""}
    result = runner.invoke(app, [*args, "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def stack_file(chain: Chain, node: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Path:
    owner, signer, *_ = chain.dev_accounts()
    out = tmp_path_factory.mktemp("stack") / "deployment.json"
    args = ["deploy-stack", "--rpc-url", node.url, "--signer", signer.address, "--out", str(out)]
    code, stack = _invoke(args, owner)
    assert code == 0, stack
    assert json.loads(out.read_text())["factory"] == stack["factory"]
    return out


@pytest.fixture(scope="module")
def agent(chain: Chain, node: AnvilNode, stack_file: Path) -> str:
    bundle = str(builtin_bundle("embed"))
    args = ["deploy", bundle, "--price", "1000", "--rpc-url", node.url]
    code, doc = _invoke([*args, "--deployment", str(stack_file)], chain.dev_accounts()[0])
    assert code == 0, doc
    assert doc["registry"] == json.loads(stack_file.read_text())["registry"]
    assert doc["bundle_measurement"] == measure(builtin_bundle("embed")).hex
    return str(doc["agent"])


def test_deploy_pins_the_bundle_measurement(chain: Chain, agent: str) -> None:
    digest = measure(builtin_bundle("embed")).digest
    assert AgentClient(Transactor(chain), agent).measurement() == agent_measurement_id(digest)


def test_deploy_without_a_key_is_bad_input(node: AnvilNode) -> None:
    bundle = str(builtin_bundle("embed"))
    zero = "0x" + "00" * 20
    args = ["deploy", bundle, "--price", "1", "--rpc-url", node.url]
    code, doc = _invoke([*args, "--factory", zero, "--registry", zero], None)
    assert code == 2
    assert doc["error"]["code"] == "account_unavailable"  # type: ignore[index]


def test_unreachable_rpc_is_bad_input(chain: Chain) -> None:
    owner = chain.dev_accounts()[0]
    args = ["deploy-stack", "--rpc-url", "http://127.0.0.1:9", "--signer", owner.address]
    code, doc = _invoke(args, owner)
    assert code == 2
    assert doc["error"]["code"] == "chain_unavailable"  # type: ignore[index]


def test_revert_is_rejected_with_the_error_name(
    chain: Chain, node: AnvilNode, stack_file: Path
) -> None:
    bundle = str(builtin_bundle("embed"))
    factory = json.loads(stack_file.read_text())["factory"]
    args = ["deploy", bundle, "--price", "1", "--rpc-url", node.url, "--factory", factory]
    code, doc = _invoke([*args, "--registry", "0x" + "00" * 20], chain.dev_accounts()[0])
    assert code == 1
    assert doc["revert"] == "ZeroAddress"
    assert doc["error"]["code"] == "reverted"  # type: ignore[index]


def _register(chain: Chain, agent: str, worker: LocalAccount) -> None:
    owner, signer, *_ = chain.dev_accounts()
    tx = Transactor(chain)
    client = AgentClient(tx, agent)
    registry = str(client.contract.functions.registry().call())
    verifier = str(tx.contract("WorkerRegistry", registry).functions.verifier().call())
    expires = int(chain.w3.eth.get_block("latest")["timestamp"]) + 86_400
    verdict = Verdict(worker.address, client.measurement(), "UpToDate", b"\x22" * 32, expires)
    message = verdict_message(verdict, chain_id=chain.chain_id, verifier=verifier)
    evidence = verdict_evidence(verdict, bytes(signer.sign_message(message).signature))
    register(tx, owner, registry, evidence)


def _fulfil_next(url: str, agent: str, worker: LocalAccount, start: int, stop: float) -> None:
    """Answer the first request of `agent` seen from block `start` on, as `worker`."""
    chain = connect(url)
    client = AgentClient(Transactor(chain), agent)
    reader = EventReader(chain, client.contract, ["Requested"], start=start)
    while time.monotonic() < stop:
        for event in reader.poll():
            req = request_from_event(event.args, event.block_number)
            message = fulfillment_message(
                chain_id=chain.chain_id,
                agent=agent,
                request_id=req.id,
                input_hash=req.input_hash,
                output_hash=keccak(OUTPUT),
            )
            client.fulfill(worker, req, OUTPUT, bytes(worker.sign_message(message).signature))
            return
        time.sleep(0.1)


def test_call_chain_verifies_a_registered_worker(chain: Chain, node: AnvilNode, agent: str) -> None:
    accounts = chain.dev_accounts()
    caller, worker = accounts[3], accounts[2]
    _register(chain, agent, worker)
    start = int(chain.w3.eth.block_number) + 1
    fulfiller = threading.Thread(
        target=_fulfil_next, args=(node.url, agent, worker, start, time.monotonic() + 30)
    )
    fulfiller.start()
    try:
        args = ["call-chain", agent, "--input", '{"text": "hi"}', "--rpc-url", node.url]
        code, doc = _invoke([*args, "--wait", "30"], caller)
    finally:
        fulfiller.join()
    assert code == 0, doc
    assert doc["verified"] is True
    assert doc["worker"] == worker.address
    assert doc["registered"] is True and doc["signature_valid"] is True
    assert doc["output_json"] == {"answer": 42}


def test_call_with_chain_verifies_a_registered_worker(
    chain: Chain, node: AnvilNode, agent: str
) -> None:
    accounts = chain.dev_accounts()
    caller, worker = accounts[7], accounts[6]
    _register(chain, agent, worker)
    start = int(chain.w3.eth.block_number) + 1
    fulfiller = threading.Thread(
        target=_fulfil_next, args=(node.url, agent, worker, start, time.monotonic() + 30)
    )
    fulfiller.start()
    try:
        args = ["call", agent, "--chain", "--input", '{"text": "hi"}', "--rpc-url", node.url]
        code, doc = _invoke([*args, "--wait", "30"], caller)
    finally:
        fulfiller.join()
    assert code == 0, doc
    assert doc["verified"] is True and doc["worker"] == worker.address
    assert doc["output_json"] == {"answer": 42}


def test_call_with_chain_times_out(chain: Chain, node: AnvilNode, agent: str) -> None:
    caller = chain.dev_accounts()[8]
    args = ["call", agent, "--chain", "--input", "{}", "--rpc-url", node.url, "--wait", "1"]
    code, doc = _invoke(args, caller)
    assert code == 1
    assert doc["error"]["code"] == "timed_out"  # type: ignore[index]
    assert doc["verified"] is False


@pytest.mark.parametrize(
    "extra",
    [
        ["--chain"],  # no --rpc-url
        ["--chain", "--rpc-url", "http://127.0.0.1:9", "--http", "http://127.0.0.1:9"],
        [],  # neither --http nor --chain
    ],
)
def test_call_needs_exactly_one_of_http_and_chain(chain: Chain, extra: list[str]) -> None:
    args = ["call", "0x" + "00" * 20, "--input", "{}", *extra]
    code, doc = _invoke(args, chain.dev_accounts()[8])
    assert code == 2
    assert doc["error"]["code"] == "bad_usage"  # type: ignore[index]


def test_call_chain_human_output(chain: Chain, node: AnvilNode, agent: str) -> None:
    caller = chain.dev_accounts()[4]
    args = ["call-chain", agent, "--input", "{}", "--rpc-url", node.url, "--wait", "0"]
    result = runner.invoke(app, args, env=_env(caller))
    assert result.exit_code == 1
    assert "timed_out" in result.stderr


def test_call_chain_unfulfilled_times_out(chain: Chain, node: AnvilNode, agent: str) -> None:
    caller = chain.dev_accounts()[5]
    args = ["call-chain", agent, "--input", "{}", "--rpc-url", node.url, "--wait", "1"]
    code, doc = _invoke(args, caller)
    assert code == 1
    assert doc["error"]["code"] == "timed_out"  # type: ignore[index]
    assert doc["verified"] is False


def test_call_chain_bad_input(chain: Chain, node: AnvilNode, agent: str) -> None:
    caller = chain.dev_accounts()[5]
    args = ["call-chain", agent, "--input", "{not json", "--rpc-url", node.url]
    code, doc = _invoke(args, caller)
    assert code == 2
    assert doc["error"]["code"] == "bad_input"  # type: ignore[index]


def test_deployment_file_must_be_readable(node: AnvilNode, tmp_path: Path, chain: Chain) -> None:
    owner = chain.dev_accounts()[0]
    bundle = str(builtin_bundle("embed"))
    args = ["deploy", bundle, "--price", "1", "--rpc-url", node.url]
    code, doc = _invoke([*args, "--deployment", str(tmp_path / "missing.json")], owner)
    assert code == 2
    assert doc["error"]["code"] == "bad_input"  # type: ignore[index]
