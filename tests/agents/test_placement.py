"""Data-parallel placement over several devices (`agents.placement`): the same answers as one
device, and its own program digests. Several devices are simulated on the CPU in a subprocess
(`--xla_force_host_platform_device_count`: the flag must be set before JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from agents.placement import lower_buckets
from agents.runtime import AgentRuntime

ROOT = Path(__file__).parents[2]
SUM_AGENT = ROOT / "examples" / "sum-agent"

SCRIPT = """
import json, sys
import jax
from agents.runtime import AgentRuntime
inputs = [{"values": [1.5, 2, 3, 4, 5, 6, 7, 8.25]}, {"values": [-1, 1]}]
out = {}
for n in (1, 2):
    with AgentRuntime.load(sys.argv[1], devices=jax.devices()[:n]) as runtime:
        out[n] = {
            "bodies": [runtime.invoke(v).body.decode() for v in inputs],
            "digests": runtime.program_digests(),
            "device": runtime.stats().device,
        }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def two_devices() -> dict[str, dict[str, object]]:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(SUM_AGENT)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_two_devices_give_the_answers_of_one(two_devices: dict[str, dict[str, object]]) -> None:
    assert two_devices["2"]["bodies"] == two_devices["1"]["bodies"]
    assert two_devices["2"]["device"] == "cpu:cpu x2"


def test_a_sharded_program_has_its_own_digest(two_devices: dict[str, dict[str, object]]) -> None:
    one, two = two_devices["1"]["digests"], two_devices["2"]["digests"]
    assert isinstance(one, dict) and isinstance(two, dict) and one.keys() == two.keys()
    assert all(one[b] != two[b] for b in one)  # the mesh is part of what is measured


def test_one_device_is_the_default_and_no_device_is_refused() -> None:
    with AgentRuntime.load(SUM_AGENT) as runtime:
        assert runtime.devices == (jax.devices()[0],)
    with pytest.raises(ValueError, match="at least one device"):
        lower_buckets(lambda p, x: x, {}, {}, [])
