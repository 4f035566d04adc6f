"""`enclava dev --demo` end to end on the embedded chain and on Anvil (`--rpc-url`): the worker
registered through the attestation service, the agents called on chain and over HTTP (attested,
pinned, encrypted), and the stack's own pieces checked directly."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from attestation.token import agent_measurement_id
from contracts.anvil import AnvilNode
from contracts.chain import Chain
from contracts.client import AgentClient
from enclava.cli import app
from enclava.devstack import DEMO_INPUTS, DevStack
from tests.enclave.conftest import SUM_BUNDLE

runner = CliRunner()


def test_dev_demo_verifies_embed_on_chain_and_over_http(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dev", "--demo", "--json", "--agent", "embed",
                                 "--state", str(tmp_path)])  # fmt: skip

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["demo"]["ok"] is True
    steps = {s["step"]: s for s in doc["demo"]["steps"]}
    assert set(steps) == {"embed on chain", "embed over HTTP"}
    assert all(s["ok"] for s in steps.values())
    assert "encrypted, signature verified" in steps["embed over HTTP"]["detail"]
    assert doc["chain"]["url"] == "embedded"
    assert set(doc["contracts"]) == {"verifier", "registry", "factory"}
    (agent,) = doc["agents"]
    assert agent["name"] == "embed"
    digest = bytes.fromhex(agent["digest"])
    assert agent["measurement"] == "0x" + agent_measurement_id(digest).hex()
    assert (tmp_path / "keys.sealed.json").exists()


def test_stack_registers_through_the_service_and_serves_on_chain(tmp_path: Path) -> None:
    with DevStack(tmp_path, agents=[str(SUM_BUNDLE)]) as stack:
        signers = httpx.get(f"{stack.service_url}/v1/signers", timeout=10).json()
        assert signers["address"] == stack.service_signer
        sum_agent = stack.agents["sum"]
        contract = AgentClient(stack.tx, sum_agent.contract.address)
        with stack.chain_lock:
            assert contract.measurement() == agent_measurement_id(sum_agent.digest)
            registry = stack.tx.contract("WorkerRegistry", stack.deployment.registry)
            registered = registry.events.WorkerRegistered().get_logs(from_block=0)
        assert [e["args"]["worker"] for e in registered] == [stack.keys.address]
        assert bytes(registered[0]["args"]["measurement"]) == sum_agent.measurement

        steps = stack.demo(deadline_s=30)

        assert [(s.step, s.ok) for s in steps] == [("sum on chain", True), ("sum over HTTP", True)]
        expected = sum_agent.runtime.invoke(DEMO_INPUTS["sum"]).body
        with stack.chain_lock:
            (event,) = contract.contract.events.Fulfilled().get_logs(from_block=0)
        assert bytes(event["args"]["output"]) == expected
        assert json.loads(expected)["sum"] == 6.5
        gateway = stack.gateway_url
    # everything stopped: the gateway no longer answers
    try:
        httpx.get(f"{gateway}/v1/attestation", timeout=2)
    except httpx.HTTPError:
        pass
    else:
        raise AssertionError("the gateway still answers after the stack stopped")


def test_unknown_agent_is_bad_usage(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dev", "--demo", "--json", "--agent", "no-such-agent",
                                 "--state", str(tmp_path)])  # fmt: skip

    assert result.exit_code == 2, result.output
    assert json.loads(result.output)["error"]["code"] == "devstack_failed"


@pytest.mark.anvil
def test_stack_deploys_onto_anvil_dev_accounts_and_the_demo_passes(
    node: AnvilNode, chain: Chain, tmp_path: Path
) -> None:
    with DevStack(tmp_path, rpc_url=node.url, agents=[str(SUM_BUNDLE)]) as stack:
        owner, relayer, caller = chain.dev_accounts()[:3]
        assert (stack.owner.address, stack.relayer.address, stack.caller.address) == (
            owner.address,
            relayer.address,
            caller.address,
        )
        assert stack.to_dict()["chain"] == {"url": node.url, "chain_id": 31337}
        factory = chain.w3.eth.get_code(stack.deployment.factory)  # on Anvil itself
        assert factory
        contract = AgentClient(stack.tx, stack.agents["sum"].contract.address)
        assert contract.measurement() == agent_measurement_id(stack.agents["sum"].digest)

        steps = stack.demo(deadline_s=30)

        assert [(s.step, s.ok) for s in steps] == [("sum on chain", True), ("sum over HTTP", True)]
        registry = stack.tx.contract("WorkerRegistry", stack.deployment.registry)
        assert registry.functions.isRegistered(stack.keys.address, contract.measurement()).call()


@pytest.mark.anvil
def test_dev_demo_with_rpc_url(node: AnvilNode, tmp_path: Path) -> None:
    result = runner.invoke(app, ["dev", "--demo", "--json", "--rpc-url", node.url,
                                 "--agent", str(SUM_BUNDLE), "--state", str(tmp_path)])  # fmt: skip

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["demo"]["ok"] is True and doc["chain"]["url"] == node.url
    assert [a["name"] for a in doc["agents"]] == ["sum"]
