"""`enclava gateway serve`, `enclava call` and `enclava verify --url`: a simulated worker's gateway
served over real HTTP (uvicorn in a thread), called and verified through the command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agents.runtime import AgentRuntime
from enclava import config
from enclava.cli import app
from enclava.gateway_commands import build_app
from enclave.gateway import ServedAgent
from enclave.gateway_client import Attestation, GatewayClient
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx
from tests.enclave.conftest import SUM_BUNDLE, live_server

runner = CliRunner()
SUM_INPUT = {"values": [1.5, 2, 3.25], "note": "hi"}
SUM_OUTPUT = {"count": 3, "note": "hi", "sum": 6.75}


@dataclass(frozen=True)
class Served:
    url: str
    state: Path
    address: str
    measurement: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("state")
    tee = SimulatedTdx(config.sim_state_dir(state), now=datetime.now(UTC))
    keys = EnclaveKeys.load_or_create(tee, config.sealed_keys_path(state))
    with AgentRuntime.load(SUM_BUNDLE) as runtime:
        agents: dict[str, ServedAgent] = {"sum": runtime}
        with live_server(build_app(tee, keys, agents, 31337)) as url:
            yield Served(url, state, keys.address, runtime.measurement.hex)


def call(served: Served, *extra: str, url: str | None = None) -> tuple[int, str]:
    args = ["call", "sum", "--http", url or served.url, "--allow-simulated"]
    args += ["--state", str(served.state), *extra]
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout


def test_call_verifies_and_prints_the_answer(served: Served) -> None:
    code, out = call(served, "--input", json.dumps(SUM_INPUT))
    assert code == 0, out
    assert "verified" in out and served.address in out and served.measurement in out


def test_call_json_has_output_and_verification(served: Served, tmp_path: Path) -> None:
    source = tmp_path / "input.json"
    source.write_text(json.dumps(SUM_INPUT))
    code, out = call(served, "--input", f"@{source}", "--measurement", served.measurement, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["output"] == SUM_OUTPUT
    assert doc["verified"] and doc["signature_ok"] and doc["encrypted"]
    assert doc["worker_address"] == served.address
    assert doc["agent_measurement"] == served.measurement
    assert {"quote", "binding", "measurement", "signature", "envelope"} <= set(doc["checks"])
    assert doc["tee"] == "tdx" and doc["simulated"]


def test_plain_call(served: Served) -> None:
    code, out = call(served, "--input", json.dumps(SUM_INPUT), "--plain", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["output"] == SUM_OUTPUT and not doc["encrypted"]
    assert "envelope" not in doc["checks"]


def test_wrong_measurement_is_rejected(served: Served) -> None:
    code, out = call(served, "--input", json.dumps(SUM_INPUT), "--measurement", "ab" * 48, "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert doc["verified"] is False
    assert doc["error"]["code"] == "gateway_untrusted"
    assert doc["error"]["check"] == "measurement"


def test_simulated_gateway_is_untrusted_without_allow_simulated(served: Served) -> None:
    args = ["call", "sum", "--http", served.url, "--input", "{}", "--json"]
    collateral = served.state / "collateral.json"
    sim = SimulatedTdx(config.sim_state_dir(served.state), now=datetime.now(UTC))
    collateral.write_text(sim.collateral(now=datetime.now(UTC)).to_json())
    result = runner.invoke(app, [*args, "--collateral", str(collateral)])
    assert result.exit_code == 1, result.stdout
    assert json.loads(result.stdout)["error"]["check"] == "quote"


def test_unreachable_gateway(served: Served) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code, out = call(served, "--input", json.dumps(SUM_INPUT), "--json", url=url)
    assert code == 2, out
    assert json.loads(out)["error"]["code"] == "gateway_error"


@pytest.mark.parametrize("text", ["{not json", "@/nonexistent/input.json"])
def test_bad_input(served: Served, text: str) -> None:
    code, out = call(served, "--input", text, "--json")
    assert code == 2, out
    assert json.loads(out)["error"]["code"] in {"bad_input", "unreadable_input"}


def test_bad_measurement_is_bad_usage(served: Served) -> None:
    code, out = call(served, "--input", "{}", "--measurement", "xyz", "--json")
    assert code == 2 and json.loads(out)["error"]["code"] == "bad_usage"


def test_gateway_serve_help() -> None:
    result = runner.invoke(app, ["gateway", "serve", "--help"])
    assert result.exit_code == 0
    assert "--agent" in result.stdout and "--chain-id" in result.stdout


def test_gateway_serve_rejects_unknown_agent(tmp_path: Path) -> None:
    args = ["gateway", "serve", "--backend", "sim", "--state", str(tmp_path), "--agent", "nope"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "neither a built-in agent" in result.output


def verify_url(served: Served, *extra: str, url: str | None = None) -> tuple[int, str]:
    args = ["verify", "--url", url or served.url, "--allow-simulated"]
    result = runner.invoke(app, [*args, "--state", str(served.state), *extra])
    return result.exit_code, result.stdout


def test_verify_url_checks_quote_binding_and_event_log(served: Served) -> None:
    code, out = verify_url(served, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["verified"] and doc["accepted"]
    assert doc["binding"]["status"] == "pass"
    assert doc["event_log"]["status"] == "pass"


def test_verify_url_human_output(served: Served) -> None:
    code, out = verify_url(served)
    assert code == 0, out
    assert served.url in out and "binding:" in out and "event_log:" in out


def _tampered_attest(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[Attestation, bytes], Attestation]
) -> None:
    original = GatewayClient.attest

    def attest(self: GatewayClient, nonce: bytes) -> Attestation:
        return change(original(self, nonce), nonce)

    monkeypatch.setattr(GatewayClient, "attest", attest)


def test_verify_url_rejects_a_tampered_event_log(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def drop_last_event(att: Attestation, _: bytes) -> Attestation:
        return replace(att, bundle=replace(att.bundle, event_log=att.event_log[:-1]))

    _tampered_attest(monkeypatch, drop_last_event)
    code, out = verify_url(served, "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert doc["verified"] and not doc["accepted"]
    assert doc["event_log"]["status"] == "fail" and doc["binding"]["status"] == "pass"
    assert any(r.startswith("event_log:") for r in doc["reasons"])


def test_verify_url_rejects_a_stale_binding(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = GatewayClient.attest
    stale = bytes(32)

    def replayed(att: Attestation, nonce: bytes) -> Attestation:
        with GatewayClient(served.url) as client:
            old = original(client, stale)
        return replace(old, bundle=replace(old.bundle, nonce=nonce))  # an old answer as fresh

    _tampered_attest(monkeypatch, replayed)
    code, out = verify_url(served, "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert doc["binding"]["status"] == "fail" and not doc["accepted"]


def test_verify_url_unreachable_gateway(served: Served) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out = verify_url(served, "--json", url=f"http://127.0.0.1:{port}")
    assert code == 2, out
    assert json.loads(out)["error"]["code"] == "gateway_error"


def test_verify_needs_exactly_one_of_quote_and_url(served: Served, tmp_path: Path) -> None:
    code, out = verify_url(served, str(tmp_path / "quote.bin"), "--json")
    assert code == 2, out
    assert json.loads(out)["error"]["code"] == "bad_usage"
    result = runner.invoke(app, ["verify", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "bad_usage"


def test_more_devices_than_the_machine_has_is_bad_usage(tmp_path: Path) -> None:
    args = ["gateway", "serve", "--agent", str(SUM_BUNDLE), "--backend", "sim"]
    result = runner.invoke(app, [*args, "--state", str(tmp_path), "--devices", "64"])
    assert result.exit_code == 2
    assert "bad_usage" in result.output and "--devices 64" in result.output


def test_gateway_serve_json_prints_its_boot_summary_then_serves(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    enclava = Path(sys.executable).with_name("enclava")
    args = [str(enclava), "gateway", "serve", "--agent", str(SUM_BUNDLE), "--backend", "sim"]
    args += ["--state", str(tmp_path), "--port", str(port), "--json", "--log-level", "warning"]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        summary = json.loads(server.stdout.readline())
        assert summary["url"] == f"http://127.0.0.1:{port}" and summary["tee"] == "simulated"
        assert [a["name"] for a in summary["agents"]] == ["sum"]
        give_up = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"{summary['url']}/healthz", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < give_up
                time.sleep(0.1)  # the server is starting: poll with a deadline
    finally:
        server.terminate()
        server.wait(30)
