"""`enclava verify --bundle FILE --nonce HEX`: a saved TDX + GPU attestation bundle (a gateway's
`/v1/attestation` answer) verified offline, one result per device."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agents.runtime import AgentRuntime
from enclava import config
from enclava.cli import app
from enclave.gateway import create_app, measure_agents_into
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx
from enclave.tee.sim_gpu import SimulatedGpu
from tests.enclave.conftest import sum_agent  # noqa: F401 - the fixture

runner = CliRunner()


@pytest.fixture(scope="module")
def saved(
    sum_agent: AgentRuntime,  # noqa: F811 - the imported fixture
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, str]:
    """A state dir holding the simulated machine and GPU, and a bundle saved from its gateway."""
    state = tmp_path_factory.mktemp("state")
    now = datetime.now(UTC)
    tee = SimulatedTdx(config.sim_state_dir(state), now=now)
    gpu = SimulatedGpu(config.sim_state_dir(state), now=now)
    agents = {"sum": sum_agent}
    measure_agents_into(tee, agents)
    gateway = create_app(tee=tee, keys=EnclaveKeys.generate(), agents=agents, chain_id=1, gpus=gpu)
    nonce = secrets.token_hex(32)
    with TestClient(gateway) as client:
        answer = client.get("/v1/attestation", params={"nonce": nonce})
    assert answer.status_code == 200
    (state / "bundle.json").write_text(answer.text)
    return state, nonce


def verify(state: Path, *args: str) -> tuple[int, dict[str, object]]:
    base = ["verify", "--bundle", str(state / "bundle.json"), "--allow-simulated"]
    result = runner.invoke(app, [*base, "--state", str(state), "--json", *args])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_a_bundle_for_my_nonce_verifies_with_each_device(saved: tuple[Path, str]) -> None:
    state, nonce = saved
    code, doc = verify(state, "--nonce", nonce)
    assert code == 0 and doc["accepted"] is True, doc
    (gpu,) = doc["gpus"]  # type: ignore[misc]
    assert gpu["accepted"] and gpu["model"] == "GH100" and gpu["simulated"] is True
    assert doc["cpu"]["simulated"] is True  # type: ignore[index]
    assert [a["name"] for a in doc["agents"]] == ["sum"]  # type: ignore[attr-defined]


def test_a_bundle_for_another_nonce_is_rejected(saved: tuple[Path, str]) -> None:
    state, _ = saved
    code, doc = verify(state, "--nonce", secrets.token_hex(32))
    assert code == 1 and doc["accepted"] is False
    reasons = " ".join(doc["reasons"])  # type: ignore[arg-type]
    assert "nonce" in reasons and "gpu[0]" in reasons


def test_without_simulated_roots_the_bundle_is_rejected(saved: tuple[Path, str]) -> None:
    state, nonce = saved
    args = ["verify", "--bundle", str(state / "bundle.json"), "--nonce", nonce, "--json"]
    sim = SimulatedTdx(config.sim_state_dir(state), now=datetime.now(UTC))
    collateral = state / "collateral.json"
    collateral.write_text(sim.collateral(now=datetime.now(UTC)).to_json())
    result = runner.invoke(app, [*args, "--collateral", str(collateral)])
    assert result.exit_code == 1  # Intel's root does not sign the simulator's quote


@pytest.mark.parametrize(
    ("content", "extra", "code"),
    [("{not json", ["--nonce", "00" * 32], "unreadable_input"),
     ("{}", ["--nonce", "00" * 32], "malformed_bundle"),
     ("{}", [], "bad_usage"),
     ("{}", ["--nonce", "abcd"], "bad_usage")],
)  # fmt: skip
def test_unusable_input_exits_2(tmp_path: Path, content: str, extra: list[str], code: str) -> None:
    (tmp_path / "bundle.json").write_text(content)
    exit_code, doc = verify(tmp_path, *extra)
    assert exit_code == 2 and doc["error"]["code"] == code  # type: ignore[index]
