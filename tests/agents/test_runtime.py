"""The runtime on a tiny synthetic bundle: validation first, batching, digests, no recompiles."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.bundle import measure
from agents.errors import (
    AgentError,
    AgentRunError,
    InputError,
    InputTooLargeError,
    OutputError,
    RuntimeLoadError,
)
from agents.runtime import AgentRuntime
from tests.agents.conftest import count_compiles, write_tiny_bundle


def test_invoke_returns_canonical_reply_naming_bundle_and_programs(
    tiny_runtime: AgentRuntime, tiny_bundle: Path
) -> None:
    reply = tiny_runtime.invoke(b'{"values": [1.23456, -2], "note": "x"}')
    assert reply.output == {"scaled": [3.704, -6.0], "note": "x"}
    assert reply.body == b'{"note":"x","scaled":[3.704,-6.0]}'
    assert reply.agent_measurement == measure(tiny_bundle).hex
    assert len(bytes.fromhex(reply.programs_digest)) == 48
    assert reply.latency_s > 0


@pytest.mark.parametrize(
    ("request_body", "error", "message"),
    [
        (b'{"values": "1,2"}', InputError, "expected array, got string"),
        (b'{"values": [1, "2"]}', InputError, "$.values[1]: expected number, got string"),
        (b'{"values": [1, 2, 3, 4, 5]}', InputTooLargeError, "has 5 items, at most 4"),
        (b'{"values": [1], "note": "' + b"n" * 17 + b'"}', InputTooLargeError, "17 characters"),
        (b'{"values": [1]', InputError, "malformed JSON"),
        (b'{"values": [1], "values": [2]}', InputError, "duplicate object key"),
        (b'{"values": [1], "x": 1}', InputError, "unexpected field"),
        (b"{}", InputError, "missing required field(s) ['values']"),
        (b'{"values": [1], "note": "' + b"n" * 600 + b'"}', InputTooLargeError, "the limit is 512"),
        (b'{"values": [[[[[1]]]]]}', InputTooLargeError, "deeper than 4"),
    ],
)
def test_bad_input_is_rejected_before_any_model_work(
    tiny_runtime: AgentRuntime, request_body: bytes, error: type[InputError], message: str
) -> None:
    with pytest.raises(error) as caught:
        tiny_runtime.submit(request_body)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert tiny_runtime.agent.batches == []  # type: ignore[attr-defined]
    stats = tiny_runtime.stats()
    assert (stats.calls, stats.batches, stats.rejected) == (0, 0, 1)


def test_python_values_go_through_the_same_checks(tiny_runtime: AgentRuntime) -> None:
    with pytest.raises(InputError, match="Out of range float"):
        tiny_runtime.invoke({"values": [float("nan")]})
    with pytest.raises(InputError, match="not JSON-serialisable"):
        tiny_runtime.invoke({"values": [object()]})
    assert tiny_runtime.agent.batches == []  # type: ignore[attr-defined]


def test_concurrent_calls_are_batched(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "tiny", max_wait_ms=500.0)
    with AgentRuntime.load(bundle) as runtime:
        futures = [runtime.submit({"values": [n]}) for n in range(8)]
        assert [f.result(10).output["scaled"] for f in futures] == [[3.0 * n] for n in range(8)]
        assert runtime.agent.batches == [8]  # type: ignore[attr-defined]
        assert runtime.stats().batches == 1
        assert runtime.stats().calls == 8


def test_ainvoke_serves_asyncio_callers(tiny_runtime: AgentRuntime) -> None:
    async def main() -> list[Any]:
        replies = await asyncio.gather(*(tiny_runtime.ainvoke({"values": [n]}) for n in range(3)))
        return [reply.output["scaled"] for reply in replies]

    assert asyncio.run(main()) == [[0.0], [3.0], [6.0]]


def test_same_input_gives_the_same_bytes(tiny_runtime: AgentRuntime) -> None:
    bodies = {tiny_runtime.invoke({"values": [0.1, 0.2, 0.3]}).body for _ in range(5)}
    assert len(bodies) == 1


def test_calls_after_load_never_compile(tiny_bundle: Path) -> None:
    with AgentRuntime.load(tiny_bundle) as runtime, count_compiles() as compiles:
        for values in ([1], [1, 2], [1, 2, 3, 4]):
            runtime.invoke({"values": values})
    assert compiles == []


def test_program_of_another_shape_is_an_error_not_a_recompile(tiny_runtime: AgentRuntime) -> None:
    programs = tiny_runtime._programs
    with count_compiles() as compiles:
        with pytest.raises(TypeError):
            programs("n4", np.zeros(5, np.float32))
        with pytest.raises(AgentError, match="no shape bucket"):
            programs("n5", np.zeros(5, np.float32))
    assert compiles == []


def test_program_digests_are_stable_across_loads_and_paths(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(tiny_bundle, tmp_path / "elsewhere" / "bundle")
    with (
        AgentRuntime.load(tiny_bundle) as first,
        AgentRuntime.load(copy, compile_all=False) as second,
    ):
        assert first.program_digests() == second.program_digests()
        assert set(first.program_digests()) == {"n4"}
        assert first.programs_digest == second.programs_digest


def test_program_digest_changes_with_the_program(
    tiny_bundle: Path, tiny_runtime: AgentRuntime
) -> None:
    model = tiny_bundle / "model.py"
    model.write_text(model.read_text().replace('x * p["scale"]', 'x + p["scale"]'))
    with AgentRuntime.load(tiny_bundle, compile_all=False) as changed:
        assert changed.program_digests()["n4"] != tiny_runtime.program_digests()["n4"]
        assert changed.measurement != tiny_runtime.measurement


def test_stats_report_load_compile_and_latency(tiny_runtime: AgentRuntime) -> None:
    tiny_runtime.invoke({"values": [1]})
    stats = tiny_runtime.stats()
    assert stats.load_s > 0 and stats.lower_s > 0
    assert set(stats.compile_s) == {"n4"}
    assert stats.calls == 1 and stats.latency_ms_p50 > 0
    assert stats.device.split(":")[0] in ("cpu", "gpu", "cuda", "rocm", "tpu")


def test_entry_module_runs_from_measured_bytes_and_writes_no_bytecode(tiny_bundle: Path) -> None:
    before = measure(tiny_bundle)
    with AgentRuntime.load(tiny_bundle, compile_all=False) as runtime:
        assert runtime.measurement == before
    assert not (tiny_bundle / "__pycache__").exists()


def test_output_violating_the_output_schema_is_an_agent_error(tiny_bundle: Path) -> None:
    manifest = tiny_bundle / "agent.toml"
    manifest.write_text(
        manifest.read_text().replace('required = ["scaled", "note"]', 'required = ["sum"]')
    )
    with AgentRuntime.load(tiny_bundle) as runtime, pytest.raises(OutputError, match="schema"):
        runtime.invoke({"values": [1]})


def test_agent_failure_reaches_callers_as_agent_run_error(tiny_bundle: Path) -> None:
    model = tiny_bundle / "model.py"
    model.write_text(model.read_text().replace("self.batches.append(len(inputs))", "1 / 0"))
    with AgentRuntime.load(tiny_bundle) as runtime, pytest.raises(AgentRunError) as caught:
        runtime.invoke({"values": [1]})
    assert caught.value.code == "agent_failed"
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("def create(context):", "def make(context):", "is not callable"),
        ("import numpy as np", "import numpy as np\nraise ImportError('nope')", "failed to import"),
        ("scale = int.from_bytes(", "scale = 1 / 0 + int.from_bytes(", "failed to build"),
    ],
)
def test_broken_entry_points_are_load_errors(
    tiny_bundle: Path, old: str, new: str, message: str
) -> None:
    model = tiny_bundle / "model.py"
    model.write_text(model.read_text().replace(old, new))
    with pytest.raises(RuntimeLoadError, match=message) as caught:
        AgentRuntime.load(tiny_bundle)
    assert caught.value.code == "runtime_load_failed"
