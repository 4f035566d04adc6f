"""`enclava verify --zk RECEIPT --image-id ID`: verdicts and exit codes on the real receipts."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from enclava.cli import app

runner = CliRunner()
ZK_SAMPLES = Path(__file__).parents[1] / "data" / "zk-samples"
DCAP = ZK_SAMPLES / "automata_dcap_risc0_receipt.json"
DCAP_IMAGE_ID = "cc80dc6c1c1f8bc524101b72b3900301dc87887457c8fcaf552e45e2a02b9695"
AT = "1749100000"  # shortly after Automata's verification time


def verify_zk(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["verify", "--at", AT, "--json", *args])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def test_accepted_receipt_exits_0_with_the_quote_verdict_fields(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('accepted_tcb_statuses = ["OutOfDate"]\n')
    code, doc = verify_zk("--zk", str(DCAP), "--image-id", DCAP_IMAGE_ID, "--policy", str(policy))
    assert code == 0 and doc["verified"] is True and doc["accepted"] is True
    assert (doc["tee"], doc["tcb_status"], doc["fmspc"]) == ("tdx", "OutOfDate", "00806F050000")
    assert doc["advisory_ids"] == ["INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"]
    assert doc["source"] == f"zk receipt (image id {DCAP_IMAGE_ID})"
    assert all(c["outcome"] == "pass" for c in doc["checks"])  # type: ignore[attr-defined]


def test_default_policy_rejects_with_an_explained_verdict() -> None:
    args = ["verify", "--zk", str(DCAP), "--image-id", "0x" + DCAP_IMAGE_ID, "--at", AT]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "zk receipt (image id cc80dc6c" in result.stdout
    assert "TCB status:  OutOfDate" in result.stdout and "REJECTED" in result.stdout
    assert "tcb_status: OutOfDate is not accepted" in result.stdout


def test_changed_journal_fails_the_proof_and_exits_1(tmp_path: Path) -> None:
    doc = json.loads(DCAP.read_text())
    journal = bytearray.fromhex(doc["journal"])
    journal[300] ^= 1  # MROWNERCONFIG, inside the TD report: still well formed
    doc["journal"] = journal.hex()
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    code, out = verify_zk("--zk", str(changed), "--image-id", DCAP_IMAGE_ID)
    assert code == 1 and out["verified"] is False
    failed = [c["name"] for c in out["checks"] if c["outcome"] == "fail"]  # type: ignore[attr-defined]
    assert failed == ["receipt.groth16"] and out["error"]["code"] == "groth16_invalid"  # type: ignore[index]


def test_receipt_for_another_image_id_exits_1() -> None:
    code, doc = verify_zk("--zk", str(DCAP), "--image-id", "00" * 32)
    assert code == 1 and doc["error"]["code"] == "image_id_mismatch"  # type: ignore[index]


def test_unusable_input_exits_2_with_a_typed_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    truncated = tmp_path / "truncated.json"
    doc = json.loads(DCAP.read_text())
    truncated.write_text(json.dumps({**doc, "seal": doc["seal"][:-2]}))
    cases = [
        ("malformed_receipt", ["--zk", str(broken), "--image-id", DCAP_IMAGE_ID]),
        ("malformed_receipt", ["--zk", str(truncated), "--image-id", DCAP_IMAGE_ID]),
        ("unreadable_input", ["--zk", str(tmp_path / "no.json"), "--image-id", DCAP_IMAGE_ID]),
        ("bad_usage", ["--zk", str(DCAP)]),
        ("bad_usage", ["--zk", str(DCAP), "--image-id", "xyz"]),
        ("bad_usage", [str(DCAP), "--zk", str(DCAP), "--image-id", DCAP_IMAGE_ID]),
    ]
    for expected, args in cases:
        code, out = verify_zk(*args)
        assert code == 2 and out["error"]["code"] == expected, args  # type: ignore[index]
        assert out["accepted"] is False


def test_receipt_whose_journal_is_not_a_dcap_output_exits_2() -> None:
    v5 = ZK_SAMPLES / "risc0_groth16_receipt_v5.json"
    image_id = json.loads(v5.read_text())["image_id"]
    code, doc = verify_zk("--zk", str(v5), "--image-id", image_id)
    assert code == 2 and doc["error"]["code"] == "malformed_journal"  # type: ignore[index]


def test_an_absent_native_library_falls_back_to_py_ecc_and_says_why(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('accepted_tcb_statuses = ["OutOfDate"]\n')
    missing = tmp_path / "libenclava_r0.so"
    args = ["verify", "--at", AT, "--json", "--zk", str(DCAP), "--image-id", DCAP_IMAGE_ID]
    result = runner.invoke(
        app, [*args, "--policy", str(policy)], env={"ENCLAVA_R0_LIBRARY": str(missing)}
    )
    doc = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 0 and doc["proof_verifier"] == "py_ecc"
    assert str(missing) in doc["native_unavailable"]
