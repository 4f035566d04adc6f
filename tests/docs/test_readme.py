"""The README's journeys run as written: every ```sh block after a `<!-- journey -->` marker,
in order, in one `bash -euo pipefail` shell from a copy of the repository root (so the commands'
relative paths and the files they write are the README's), with the venv's `enclava` on PATH and
a private HOME. The journeys start `enclava dev --anvil` themselves and stop it at the end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contracts.conftest import require_anvil

pytestmark = pytest.mark.anvil

ROOT = Path(__file__).parents[2]
JOURNEY = re.compile(r"<!-- journey -->\n```sh\n(.*?)```", re.DOTALL)


def journeys() -> list[str]:
    return JOURNEY.findall((ROOT / "README.md").read_text())


def test_the_readme_has_the_three_journeys_and_a_stop() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = journeys()
    assert len(blocks) >= 6
    assert "enclava dev --anvil" in blocks[0] and "kill $WORKER_PID $DEV_PID" in blocks[-1]
    for command in ("enclava deploy ", "enclava call ", "--http ", "enclava verify --tx "):
        assert any(command in b for b in blocks), command
    # a block meant to run but not marked would silently escape this test
    assert text.count("```sh") == len(blocks) + text.count("```sh\nmake demo")


def test_every_journey_command_runs_as_written(tmp_path: Path) -> None:
    require_anvil()
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("examples", "tests", "agents", "node_modules"):
        (work / name).symlink_to(ROOT / name)
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "ENCLAVA_ANVIL": str(ROOT / "node_modules" / ".bin" / "anvil"),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
    }
    script = "set -euo pipefail\n" + "\n".join(journeys())
    process = subprocess.Popen(
        ["bash", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            subprocess.run(["pkill", "-KILL", "-s", str(process.pid)], check=False)
    text = output.decode(errors="replace")
    logs = "".join(
        f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in (work / ".enclava").glob("*.log")
    )
    assert process.returncode == 0, text[-6000:] + logs
    assert "verified" in text and "ACCEPTED" in text
