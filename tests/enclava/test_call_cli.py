"""`enclava call` against a whole dev stack (`DevStack`) on Anvil: `--http` pinned to the agent
contract's measurement, and `--chain --encrypt-to` (input sealed to the gateway's attested,
registered worker; the answer sealed back and opened); then `verify --tx --url` of that
fulfilment. The pinning itself also on the embedded chain, and the sealed-answer rules without a
chain."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from agents.canonical import dump_canonical
from attestation.eventlog import events_to_json
from contracts.anvil import AnvilNode
from contracts.client import AgentClient, create_agent, register
from enclava import config
from enclava.cli import app
from enclava.devstack import DEMO_INPUTS, DevStack, serve_in_thread
from enclava.gateway_commands import build_app
from enclava.gateway_trust import (
    GatewayTrust,
    agent_contract,
    contract_measurement,
    pinned_agent,
    verify_gateway,
)
from enclava.onchain_envelope import CallRejectedError, SealedInput, open_output, output_fields
from enclave.envelope import seal_response
from enclave.gateway_client import GatewayClient, GatewayVerificationError
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx
from enclave.worker import onchain_response_context
from tests.enclave.conftest import SUM_BUNDLE

runner = CliRunner()
SUM_INPUT = json.dumps(DEMO_INPUTS["sum"])


@pytest.fixture(scope="module")
def stack(node: AnvilNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(
        tmp_path_factory.mktemp("stack"), rpc_url=node.url, agents=[str(SUM_BUNDLE)]
    ) as s:
        yield s


@pytest.fixture(scope="module")
def sum_contract(stack: DevStack) -> AgentClient:
    return stack.agents["sum"].contract


@contextmanager
def _other_gateway(stack: DevStack) -> Iterator[tuple[str, EnclaveKeys]]:
    """A second simulated worker on the stack's machine (so the same root), with its own keys,
    serving `sum` over HTTP but not on chain."""
    sim = SimulatedTdx(config.sim_state_dir(stack.state), now=datetime.now(UTC))
    keys = EnclaveKeys.generate()
    runtime = stack.agents["sum"].runtime
    with serve_in_thread(build_app(sim, keys, {"sum": runtime}, stack.chain.chain_id)) as url:
        yield url, keys


@pytest.fixture(scope="module")
def unregistered_gateway(stack: DevStack) -> Iterator[tuple[str, EnclaveKeys]]:
    with _other_gateway(stack) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def registered_gateway(stack: DevStack) -> Iterator[tuple[str, EnclaveKeys]]:
    with _other_gateway(stack) as gateway:
        _register_through_the_service(stack, gateway[1])
        yield gateway


def _env(account: LocalAccount) -> dict[str, str]:
    return {"ENCLAVA_PRIVATE_KEY": "0x" + bytes(account.key).hex()}


def _call(stack: DevStack, args: list[str], account: LocalAccount) -> tuple[int, dict[str, Any]]:
    sim = ["--allow-simulated", "--state", str(stack.state), "--json"]
    result = runner.invoke(app, ["call", *args, *sim], env=_env(account))
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def _http(stack: DevStack, contract: str, *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["sum", "--input", SUM_INPUT, "--http", stack.gateway_url, "--agent-contract", contract]
    return _call(
        stack, [*args, "--rpc-url", stack.chain.url, *extra], stack.chain.dev_accounts()[9]
    )


def _sealed_call(
    stack: DevStack, gateway: str, account: LocalAccount, value: str = SUM_INPUT
) -> tuple[int, dict[str, Any]]:
    agent = stack.agents["sum"].contract.address
    args = [agent, "--chain", "--rpc-url", stack.chain.url, "--input", value, "--wait", "30"]
    return _call(stack, [*args, "--encrypt-to", gateway], account)


@pytest.mark.anvil
def test_http_call_pinned_by_the_agent_contract_is_accepted(
    stack: DevStack, sum_contract: AgentClient
) -> None:
    code, doc = _http(stack, sum_contract.address)

    assert code == 0, doc
    assert doc["verified"] is True and doc["encrypted"] is True
    assert "contract_measurement" in doc["checks"]
    assert doc["agent_contract"] == sum_contract.address
    assert doc["contract_measurement"] == "0x" + sum_contract.measurement().hex()
    assert doc["agent_measurement"] == stack.agents["sum"].digest.hex()
    assert doc["output"]["sum"] == 6.5


@pytest.mark.anvil
def test_http_call_rejects_a_contract_pinning_another_measurement(stack: DevStack) -> None:
    other = secrets.token_bytes(32)
    contract = create_agent(
        stack.tx, stack.owner, stack.deployment.factory, measurement=other, price=1,
        royalty_bps=0, registry=stack.deployment.registry, timeout=3600,
    )  # fmt: skip

    code, doc = _http(stack, contract.address)

    assert code == 1, doc
    assert doc["verified"] is False
    assert doc["error"]["code"] == "gateway_untrusted"
    assert doc["error"]["check"] == "contract_measurement"
    assert doc["contract_measurement"] == "0x" + other.hex()


@pytest.mark.anvil
def test_http_pinning_needs_a_chain_and_an_agent_contract(stack: DevStack) -> None:
    nobody = "0x" + "00" * 19 + "01"
    code, doc = _http(stack, nobody)
    assert code == 2 and doc["error"]["code"] == "not_an_agent"
    args = ["sum", "--input", "{}", "--http", stack.gateway_url, "--agent-contract", nobody]
    code, doc = _call(stack, args, stack.chain.dev_accounts()[9])
    assert code == 2 and doc["error"]["code"] == "bad_usage"


@pytest.mark.anvil
def test_encrypted_chain_call_opens_the_sealed_answer(
    stack: DevStack, sum_contract: AgentClient
) -> None:
    caller = stack.chain.dev_accounts()[5]

    code, doc = _sealed_call(stack, stack.gateway_url, caller)

    assert code == 0, doc
    assert doc["verified"] is True and doc["encrypted"] is True
    assert doc["worker"] == doc["gateway_worker"] == stack.keys.address
    expected = stack.agents["sum"].runtime.invoke(DEMO_INPUTS["sum"]).body
    assert doc["output"] == expected.decode() and doc["output_json"]["sum"] == 6.5
    requested = sum_contract.contract.events.Requested().get_logs(from_block=0)
    (mine,) = [e for e in requested if int(e["args"]["id"]) == doc["request_id"]]
    assert bytes(mine["args"]["input"])[:1] == b"\x01"  # an envelope, not the JSON
    assert b"values" not in bytes(mine["args"]["input"])
    fulfilled = sum_contract.contract.events.Fulfilled().get_logs(from_block=0)
    (answer,) = [e for e in fulfilled if int(e["args"]["id"]) == doc["request_id"]]
    assert bytes(answer["args"]["output"])[:1] == b"\x01" and b"sum" not in answer["args"]["output"]


@pytest.mark.anvil
def test_encrypted_chain_call_human_output(stack: DevStack) -> None:
    agent = stack.agents["sum"].contract.address
    args = ["call", agent, "--chain", "--rpc-url", stack.chain.url, "--input", SUM_INPUT]
    args += ["--encrypt-to", stack.gateway_url, "--allow-simulated", "--state", str(stack.state)]

    result = runner.invoke(app, args, env=_env(stack.chain.dev_accounts()[2]))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["sum"] == 6.5
    assert f"encrypted to {stack.keys.address}" in result.stdout


@pytest.mark.anvil
def test_verify_tx_with_the_gateway_accepts_the_encrypted_fulfilment(
    stack: DevStack, sum_contract: AgentClient
) -> None:
    code, doc = _sealed_call(stack, stack.gateway_url, stack.chain.dev_accounts()[6])
    assert code == 0, doc

    args = ["verify", "--tx", doc["fulfil_tx"], "--rpc-url", stack.chain.url]
    args += ["--url", stack.gateway_url, "--allow-simulated", "--state", str(stack.state)]
    result = runner.invoke(app, [*args, "--json"])

    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["worker"] == stack.keys.address and report["request_ids"] == [doc["request_id"]]
    steps = {s["step"]: s["status"] for s in report["steps"]}
    assert steps["gateway_worker"] == steps["binding"] == steps["registration"] == "pass"


@pytest.mark.anvil
def test_encrypted_input_the_agent_refuses_is_a_sealed_refusal(stack: DevStack) -> None:
    code, doc = _sealed_call(stack, stack.gateway_url, stack.chain.dev_accounts()[7], '{"x": 1}')

    assert code == 1, doc
    assert doc["error"]["code"] == "request_refused"
    assert doc["worker_error"] == "input_invalid"
    assert doc["verified"] is False and doc["encrypted"] is True
    assert doc["signature_valid"] is True  # the refusal itself is the worker's, signed


@pytest.mark.anvil
def test_plain_chain_call_refused_by_the_agent_is_rejected(stack: DevStack) -> None:
    agent = stack.agents["sum"].contract.address
    args = [agent, "--chain", "--rpc-url", stack.chain.url, "--input", '{"x": 1}', "--wait", "30"]

    code, doc = _call(stack, args, stack.chain.dev_accounts()[8])

    assert code == 1, doc
    assert doc["error"]["code"] == "request_refused" and doc["encrypted"] is False
    assert doc["worker_error"] == "input_invalid"


@pytest.mark.anvil
def test_encrypting_to_an_unregistered_worker_is_rejected_before_paying(
    stack: DevStack, unregistered_gateway: tuple[str, EnclaveKeys]
) -> None:
    url, keys = unregistered_gateway
    caller = stack.chain.dev_accounts()[3]
    before = stack.chain.w3.eth.get_transaction_count(caller.address)

    code, doc = _sealed_call(stack, url, caller)

    assert code == 1, doc
    assert doc["error"]["code"] == "worker_not_registered"
    assert doc["gateway_worker"] == keys.address
    assert stack.chain.w3.eth.get_transaction_count(caller.address) == before


@pytest.mark.anvil
def test_input_sealed_to_another_worker_gets_a_clear_refusal(
    stack: DevStack, registered_gateway: tuple[str, EnclaveKeys]
) -> None:
    """The other worker is registered for `sum` but does not serve it on chain: the stack's
    worker cannot open the input and answers `envelope_invalid` in the clear."""
    url, keys = registered_gateway

    code, doc = _sealed_call(stack, url, stack.chain.dev_accounts()[4])

    assert code == 1, doc
    assert doc["error"]["code"] == "request_refused"
    assert doc["worker_error"] == "envelope_invalid"
    assert doc["worker"] == stack.keys.address and doc["gateway_worker"] == keys.address


def _register_through_the_service(stack: DevStack, keys: EnclaveKeys) -> None:
    """Register `keys`' worker for `sum` the way the stack registers its own: a quote of a
    machine measuring `sum`, the attestation service's signed verdict, `register`."""
    sim = SimulatedTdx(config.sim_state_dir(stack.state), now=datetime.now(UTC))
    build_app(sim, keys, {"sum": stack.agents["sum"].runtime}, stack.chain.chain_id)
    nonce = secrets.token_bytes(32)
    body = {
        "quote": base64.b64encode(sim.quote(keys.report_data(nonce))).decode(),
        "event_log": events_to_json(sim.event_log()),
        "binding": {
            "address": keys.address, "x25519_public": keys.x25519_public.hex(),
            "nonce": nonce.hex(),
        },
        "policy": "dev",
        "agent": "sum",
        "verdict_domain": {
            "chain_id": stack.chain.chain_id, "verifying_contract": stack.deployment.verifier,
        },
    }  # fmt: skip
    answer = httpx.post(f"{stack.service_url}/v1/verify", json=body, timeout=60).json()
    evidence = bytes.fromhex(answer["signed_verdict"]["evidence"].removeprefix("0x"))
    register(stack.tx, stack.owner, stack.deployment.registry, evidence)


def test_contract_pinning_on_the_embedded_chain(tmp_path: Path) -> None:
    with DevStack(tmp_path, agents=[str(SUM_BUNDLE)]) as s:
        trust = GatewayTrust(allow_simulated=True, state=tmp_path)
        with s.chain_lock:
            pinned = contract_measurement(agent_contract(s.chain, s.agents["sum"].contract.address))
        with GatewayClient(s.gateway_url) as client:
            verified = verify_gateway(client, trust, now=datetime.now(UTC))

        assert pinned_agent(verified, "sum", pinned).measurement == s.agents["sum"].digest
        with pytest.raises(GatewayVerificationError) as err:
            pinned_agent(verified, "sum", secrets.token_bytes(32))
        assert err.value.check == "contract_measurement"


def _sealed(answer: bytes, key: X25519PrivateKey, request_id: int) -> tuple[bytes, dict[str, Any]]:
    """`answer` sealed as the worker seals an on-chain output, and where it belongs."""
    agent = "0x" + "11" * 20
    context = onchain_response_context(agent, request_id, 31337)
    sealed = seal_response(key.public_key(), answer, context)
    return sealed, {"agent": agent, "request_id": request_id, "chain_id": 31337}


def test_sealed_answer_opens_only_for_its_request() -> None:
    key = X25519PrivateKey.generate()
    sealed, where = _sealed(b'{"sum":1}', key, 7)
    assert open_output(sealed, key, **where) == b'{"sum":1}'
    with pytest.raises(CallRejectedError) as err:
        open_output(sealed, key, **{**where, "request_id": 8})
    assert err.value.code == "envelope_invalid"
    with pytest.raises(CallRejectedError):
        open_output(sealed, X25519PrivateKey.generate(), **where)


def test_clear_answers_to_a_sealed_request_are_rejected() -> None:
    key = X25519PrivateKey.generate()
    _, where = _sealed(b"", key, 1)
    refusal = dump_canonical({"error": {"code": "envelope_invalid"}})
    with pytest.raises(CallRejectedError) as err:
        open_output(refusal, key, **where)
    assert (err.value.code, err.value.fields) == (
        "request_refused",
        {"worker_error": "envelope_invalid"},
    )
    with pytest.raises(CallRejectedError) as err:
        open_output(b'{"sum":1}', key, **where)
    assert err.value.code == "envelope_invalid"


def test_verified_sealed_refusal_is_rejected_with_the_report() -> None:
    key = X25519PrivateKey.generate()
    sealed, where = _sealed(dump_canonical({"error": {"code": "input_invalid"}}), key, 3)
    sealed_input = SealedInput(b"", key, "0x" + "22" * 20, "http://gateway")
    doc = {"verified": True, "agent": where["agent"], "request_id": 3, "worker": "w"}
    with pytest.raises(CallRejectedError) as err:
        output_fields(sealed, sealed_input, doc, where["chain_id"])
    assert err.value.code == "request_refused"
    assert err.value.fields["worker_error"] == "input_invalid"
    assert err.value.fields["worker"] == "w" and err.value.fields["encrypted"] is True
    shown = output_fields(sealed, sealed_input, {**doc, "verified": False}, where["chain_id"])
    assert shown["output"] == "0x" + sealed.hex() and shown["output_json"] is None
