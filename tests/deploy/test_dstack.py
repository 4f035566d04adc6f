"""The dstack compose file and `enclava measure --compose`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from attestation.compose import compose_hash
from enclava.cli import app
from enclava.compose_commands import wrap_docker_compose
from tests.deploy.files import ROOT, assert_cli_accepts

COMPOSE = ROOT / "deploy" / "dstack" / "docker-compose.yml"


@pytest.fixture(scope="module")
def worker() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert doc["name"] == "enclava"
    return doc["services"]["worker"]


def test_worker_uses_the_dstack_backend_through_the_guest_agent_socket(
    worker: dict[str, Any],
) -> None:
    command = worker["command"]
    assert command[command.index("--backend") + 1] == "dstack"
    assert "/var/run/dstack.sock:/var/run/dstack.sock" in worker["volumes"]


def test_image_is_pinned_by_digest(worker: dict[str, Any]) -> None:
    """The compose hash pins the image only through its digest; a tag could be re-pointed."""
    assert "@sha256:" in worker["image"]
    assert len(worker["image"].split("@sha256:")[1]) == 64


def test_worker_command_line_exists_in_the_cli(worker: dict[str, Any]) -> None:
    assert_cli_accepts([str(a) for a in worker["command"]])


def test_healthcheck_and_published_port_reach_the_gateway(worker: dict[str, Any]) -> None:
    command = worker["command"]
    port = command[command.index("--gateway-port") + 1]
    assert f"{port}:{port}" in worker["ports"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(worker["healthcheck"]["test"])


def test_wrapper_allows_exactly_the_interpolated_variables() -> None:
    doc = json.loads(wrap_docker_compose(COMPOSE.read_text()))
    assert doc["allowed_envs"] == [
        "ENCLAVA_AGENT_CONTRACT",
        "ENCLAVA_ATTESTATION_SERVICE",
        "ENCLAVA_PRIVATE_KEY",
        "ENCLAVA_RPC_URL",
    ]
    assert doc["docker_compose_file"] == COMPOSE.read_text()
    assert doc["name"] == "enclava"


def test_measure_compose_prints_the_hash_of_the_bytes_it_writes(tmp_path: Path) -> None:
    out = tmp_path / "app-compose.json"
    args = ["measure", "--compose", str(COMPOSE), "--app-compose-out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == compose_hash(out.read_bytes()).hex()
    again = CliRunner().invoke(app, ["measure", "--compose", str(out), "--json"])
    assert json.loads(again.output) == {
        "compose_hash": result.output.strip(),
        "source": "app-compose",
        "app_compose_bytes": out.stat().st_size,
    }


def test_measure_compose_hashes_an_app_compose_byte_for_byte(tmp_path: Path) -> None:
    sample = json.loads((ROOT / "tests/data/dstack-samples/phala_cvm_tcb_info.json").read_text())
    path = tmp_path / "app-compose.json"
    path.write_text(sample["app_compose"])
    result = CliRunner().invoke(app, ["measure", "--compose", str(path)])
    assert result.output.strip() == sample["event_log"][2]["event_payload"]


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("app-compose.json", '{"name": "no runner"}', "malformed_app_compose"),
        ("docker-compose.yml", "just: text\n", "malformed_docker_compose"),
        ("docker-compose.yml", "services: [\n", "malformed_docker_compose"),
    ],
)
def test_measure_compose_refuses_malformed_files(
    tmp_path: Path, name: str, content: str, code: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    result = CliRunner().invoke(app, ["measure", "--compose", str(path), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output)["error"]["code"] == code


def test_measure_needs_exactly_one_of_bundle_and_compose() -> None:
    result = CliRunner().invoke(app, ["measure", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output)["error"]["code"] == "bad_usage"
