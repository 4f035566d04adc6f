"""`enclava verify` and `enclava demo`: outputs and exit codes on real samples and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclava.cli import app
from tests.fake_pcs import FakePcs
from tests.samples import ALIBABA_V5, OUTDATED_V5, SAMPLES, SGX_V3, TDX_V4, Sample

runner = CliRunner()


def run_verify(sample: Sample, *extra: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(
        app,
        [
            "verify",
            str(SAMPLES / sample.quote_file),
            "--collateral",
            str(SAMPLES / sample.collateral_file),
            "--at",
            str(sample.at),
            "--json",
            *extra,
        ],
    )
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_accepted_quote_exits_0_with_the_documented_json_fields() -> None:
    code, doc = run_verify(TDX_V4)
    assert code == 0
    assert doc["verified"] is True and doc["accepted"] is True and doc["reasons"] == []
    assert (doc["tcb_status"], doc["advisory_ids"], doc["tee"]) == ("UpToDate", [], "tdx")
    assert (doc["quote_version"], doc["fmspc"]) == (4, "B0C06F000000")
    measurements = doc["measurements"]
    assert isinstance(measurements, dict) and len(measurements["mrtd"]) == 96
    assert all(c["outcome"] == "pass" for c in doc["checks"])  # type: ignore[union-attr]
    _, sgx = run_verify(SGX_V3)
    outcomes = {c["name"]: c["outcome"] for c in sgx["checks"]}  # type: ignore[union-attr]
    assert outcomes["tcb.tdx_module"] == "n/a" and outcomes["quote.signature"] == "pass"


def test_policy_rejection_exits_1_with_reasons() -> None:
    code, doc = run_verify(SGX_V3)
    assert code == 1
    assert doc["verified"] is True and doc["accepted"] is False
    assert doc["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert doc["reasons"][0].startswith("tcb_status: ConfigurationAndSWHardeningNeeded")  # type: ignore[index]


def test_failed_check_exits_1_naming_the_check() -> None:
    code, doc = run_verify(OUTDATED_V5)
    assert code == 1 and doc["verified"] is False
    assert doc["error"] == {"code": "tcb_mismatch", "message": doc["error"]["message"]}  # type: ignore[index]
    failed = [c for c in doc["checks"] if c["outcome"] == "fail"]  # type: ignore[union-attr]
    assert [c["name"] for c in failed] == ["tcb.platform"]


def test_policy_file_can_accept_what_the_default_rejects(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('accepted_tcb_statuses = ["OutOfDate"]\nallow_any_mrservicetd = true\n')
    code, doc = run_verify(ALIBABA_V5, "--policy", str(policy))
    assert code == 0 and doc["relaxations"]


def test_truncated_quote_exits_2_with_typed_error(tmp_path: Path) -> None:
    quote = tmp_path / "q.bin"
    quote.write_bytes(TDX_V4.quote[:700])
    result = runner.invoke(
        app,
        ["verify", str(quote), "--collateral", str(SAMPLES / TDX_V4.collateral_file), "--json"],
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "malformed_quote"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (
            ["verify", "/nonexistent/quote.bin", "--collateral", "/nonexistent.json"],
            "unreadable_input",
        ),
        (
            [
                "verify",
                str(SAMPLES / TDX_V4.quote_file),
                "--collateral",
                str(SAMPLES / "README.md"),
            ],
            "malformed_collateral",
        ),
        (
            [
                "verify",
                str(SAMPLES / TDX_V4.quote_file),
                "--collateral",
                "x.json",
                "--pccs",
                "http://127.0.0.1:1",
            ],
            "bad_usage",
        ),
    ],
)
def test_unusable_input_exits_2_without_traceback(args: list[str], code: str) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == code
    assert "Traceback" not in result.output


def test_human_output_explains_every_check() -> None:
    result = runner.invoke(
        app,
        [
            "verify",
            str(SAMPLES / SGX_V3.quote_file),
            "--collateral",
            str(SAMPLES / SGX_V3.collateral_file),
            "--at",
            str(SGX_V3.at),
        ],
    )
    assert result.exit_code == 1
    for text in (
        "quote.signature",
        "tcb.platform",
        "ConfigurationAndSWHardeningNeeded",
        "INTEL-SA-00615",
        "REJECTED",
    ):
        assert text in result.stdout


def test_demo_verifies_every_sample() -> None:
    result = runner.invoke(app, ["demo", "--samples", str(SAMPLES), "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert len(doc) == 8
    worker = doc["simulated TDX worker (this machine)"]
    assert worker["accepted"] is True and worker["tee"] == "simulated"
    assert doc["dcapqvl_tdx_v4_quote.bin"]["accepted"] is True
    assert doc["dcapqvl_tappd_tdx_v4_quote.hex"]["verified"] is False


def test_installed_entry_point_runs() -> None:
    enclava = Path(sys.executable).parent / "enclava"
    completed = subprocess.run(
        [
            str(enclava),
            "verify",
            str(SAMPLES / TDX_V4.quote_file),
            "--collateral",
            str(SAMPLES / TDX_V4.collateral_file),
            "--at",
            str(TDX_V4.at),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "ACCEPTED" in completed.stdout


def test_verify_fetches_collateral_from_a_pccs_and_caches_it(pcs: FakePcs, tmp_path: Path) -> None:
    pcs.serve(TDX_V4, "tdx", "B0C06F000000", "platform")
    args = [
        "verify",
        str(SAMPLES / TDX_V4.quote_file),
        "--pccs",
        pcs.base_url,
        "--cache-dir",
        str(tmp_path),
        "--at",
        str(TDX_V4.at),
        "--json",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["tcb_status"] == "UpToDate"
    requests = len(pcs.seen)
    assert requests == 4
    second = runner.invoke(app, args)
    assert second.exit_code == 0
    assert len(pcs.seen) == requests  # served from the on-disk cache


def test_unreachable_pccs_exits_2_with_collateral_unavailable(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "verify",
            str(SAMPLES / TDX_V4.quote_file),
            "--pccs",
            "http://127.0.0.1:9",
            "--cache-dir",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "collateral_unavailable"


def test_measure_prints_the_bundle_digest_reproducibly(tmp_path: Path) -> None:
    import shutil

    from agents.builtin import builtin_bundle

    copy = tmp_path / "embed"
    shutil.copytree(builtin_bundle("embed"), copy, ignore=shutil.ignore_patterns("__pycache__"))
    first = runner.invoke(app, ["measure", str(builtin_bundle("embed"))])
    second = runner.invoke(app, ["measure", str(copy), "--json"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert len(first.stdout.strip()) == 96
    assert json.loads(second.stdout)["measurement"] == first.stdout.strip()


def test_measure_of_a_missing_bundle_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["measure", str(tmp_path / "none"), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "bundle_invalid"
