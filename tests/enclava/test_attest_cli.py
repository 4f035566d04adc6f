"""`enclava attest serve --dev` starts the attestation service on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from enclava.cli import app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_attest_serve_dev_answers_health_and_signers(tmp_path: Path) -> None:
    port = _free_port()
    enclava = Path(sys.executable).parent / "enclava"
    env = {**os.environ, "ENCLAVA_STATE_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [str(enclava), "attest", "serve", "--dev", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)  # the server is starting; poll with a deadline
        assert health is not None and health.status_code == 200, process.stderr
        signers = httpx.get(f"http://127.0.0.1:{port}/v1/signers", timeout=5).json()
        assert signers["address"].startswith("0x")
        bad = httpx.post(f"http://127.0.0.1:{port}/v1/verify", content=b"{not json", timeout=5)
        assert bad.status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("case", ["missing", "garbage", "exists-with-new"])
def test_a_bad_key_file_is_a_typed_error_not_a_traceback(tmp_path: Path, case: str) -> None:
    key_file = tmp_path / "keys.json"
    args = ["attest", "serve", "--key-file", str(key_file)]
    if case == "garbage":
        key_file.write_text("{not json")
    if case == "exists-with-new":
        key_file.write_text("{}")
        args.append("--new-key-file")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "key_file_invalid" in result.output and "Traceback" not in result.output
