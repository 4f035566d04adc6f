"""`enclava quote`, `enclava sim collateral` and `enclava verify --allow-simulated`: the
simulated TEE's evidence end to end through the command line."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attestation.binding import check_worker_report_data
from attestation.eventlog import events_from_json
from attestation.quote import decode_quote_file, parse_quote
from enclava.cli import app

runner = CliRunner()


@pytest.fixture
def evidence(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, object]]:
    state = tmp_path / "state"
    nonce = secrets.token_hex(32)
    quote_file, collateral, root = tmp_path / "q.bin", tmp_path / "c.json", tmp_path / "root.pem"
    result = runner.invoke(
        app,
        [
            "quote",
            "--nonce",
            nonce,
            "--backend",
            "sim",
            "--state",
            str(state),
            "--out",
            str(quote_file),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout) | {"nonce": nonce}
    made = runner.invoke(
        app,
        [
            "sim",
            "collateral",
            "--out",
            str(collateral),
            "--root-out",
            str(root),
            "--state",
            str(state),
        ],
    )
    assert made.exit_code == 0, made.output
    return quote_file, collateral, state, doc


def test_quote_binds_the_worker_keys_and_nonce(
    evidence: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    quote_file, _, _, doc = evidence
    raw = decode_quote_file(quote_file.read_bytes())
    assert raw.hex() == doc["quote"] and doc["tee"] == "simulated"
    report = parse_quote(raw).report
    address = bytes.fromhex(str(doc["address"])[2:])
    x25519 = bytes.fromhex(str(doc["x25519_public"]))
    check_worker_report_data(report.report_data, address, x25519, bytes.fromhex(str(doc["nonce"])))
    assert events_from_json(doc["event_log"]) == ()


def test_simulated_quote_is_rejected_by_default(
    evidence: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    quote_file, collateral, _, _ = evidence
    result = runner.invoke(
        app, ["verify", str(quote_file), "--collateral", str(collateral), "--json"]
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["code"] == "certificate_invalid"


def test_allow_simulated_trusts_the_local_simulator_and_says_so(
    evidence: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    quote_file, collateral, state, _ = evidence
    args = ["verify", str(quote_file), "--collateral", str(collateral), "--allow-simulated"]
    result = runner.invoke(app, [*args, "--state", str(state), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["tee"] == "simulated" and doc["accepted"] is True
    assert doc["trust_anchor"]["simulated"] is True and doc["relaxations"]
    human = runner.invoke(app, [*args, "--state", str(state)])
    assert human.exit_code == 0 and "tee:" in human.stdout and "simulated" in human.stdout


def test_allow_simulated_with_explicit_root(
    evidence: tuple[Path, Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    quote_file, collateral, _, _ = evidence
    result = runner.invoke(
        app,
        [
            "verify",
            str(quote_file),
            "--collateral",
            str(collateral),
            "--allow-simulated",
            "--root",
            str(tmp_path / "root.pem"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output


def test_allow_simulated_without_a_local_simulator_exits_2(
    evidence: tuple[Path, Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    quote_file, collateral, _, _ = evidence
    result = runner.invoke(
        app,
        [
            "verify",
            str(quote_file),
            "--collateral",
            str(collateral),
            "--allow-simulated",
            "--state",
            str(tmp_path / "empty"),
            "--json",
        ],
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "tee_unavailable"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--nonce", "ab" * 32, "--report-data", "00" * 64],
        ["--nonce", "abcd"],
        ["--report-data", "zz"],
        ["--report-data", "00" * 64, "--backend", "quantum"],
    ],
)
def test_quote_bad_usage_exits_2(args: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["quote", *args, "--state", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert "error" in json.loads(result.stdout)


def test_quote_with_raw_report_data_and_event_log_file(tmp_path: Path) -> None:
    log = tmp_path / "events.json"
    result = runner.invoke(
        app,
        [
            "quote",
            "--report-data",
            "07" * 64,
            "--backend",
            "sim",
            "--state",
            str(tmp_path),
            "--event-log",
            str(log),
        ],
    )
    assert result.exit_code == 0, result.output
    raw = bytes.fromhex(result.stdout.strip().splitlines()[-1])
    assert parse_quote(raw).report.report_data == b"\x07" * 64
    assert json.loads(log.read_text()) == []


def test_sim_collateral_json_names_what_it_wrote(tmp_path: Path) -> None:
    out, root = tmp_path / "c.json", tmp_path / "root.pem"
    args = ["sim", "collateral", "--out", str(out), "--root-out", str(root)]
    result = runner.invoke(app, [*args, "--state", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["collateral"], doc["root"], doc["valid_days"]) == (str(out), str(root), 30)
    assert out.exists() and root.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
