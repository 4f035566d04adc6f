"""Fixtures for the agents tests: the built-in runtimes (loaded once) and a tiny bundle."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jax.monitoring
import pytest

from agents.builtin import builtin_bundle
from agents.runtime import AgentRuntime

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextmanager
def count_compiles() -> Iterator[list[str]]:
    """Collects one entry per XLA backend compile that happens inside the ``with`` block."""
    events: list[str] = []

    def listener(event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event == COMPILE_EVENT:
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


SCALE_WEIGHT = (3).to_bytes(4, "little")

TINY_MODEL = textwrap.dedent(
    '''
    """A tiny agent for runtime tests: scales a vector of four numbers by a weight."""

    import jax
    import jax.numpy as jnp
    import numpy as np

    from agents.runtime import ProgramSpec


    class Scaler:
        def __init__(self, context):
            scale = int.from_bytes(context.weights["scale"], "little")
            self.params = {"scale": np.float32(scale)}
            self.batches = []

        def program(self):
            shape = (jax.ShapeDtypeStruct((4,), jnp.float32),)
            fn = lambda p, x: x * p["scale"]
            return ProgramSpec(fn=fn, params=self.params, buckets={"n4": shape})

        def run(self, inputs, programs):
            self.batches.append(len(inputs))
            outputs = []
            for value in inputs:
                x = np.zeros(4, np.float32)
                x[: len(value["values"])] = value["values"]
                out = programs("n4", x)
                scaled = out[: len(value["values"])].tolist()
                outputs.append({"scaled": scaled, "note": value.get("note", "")})
            return outputs


    def create(context):
        return Scaler(context)
    '''
)


def tiny_manifest(weight_sha: str, *, max_wait_ms: float = 1.0) -> str:
    return textwrap.dedent(
        f"""
        name = "tiny"
        version = "0.1.0"
        entry = "model:create"

        [resources]
        max_batch = 8
        max_wait_ms = {max_wait_ms}
        max_input_bytes = 512
        max_json_depth = 4
        float_decimals = 3

        [weights.scale]
        source = "bundle:weights/scale.bin"
        sha256 = "{weight_sha}"
        size = 4

        [input_schema]
        type = "object"
        required = ["values"]
        additionalProperties = false

        [input_schema.properties]
        values = {{ type = "array", minItems = 1, maxItems = 4, items = {{ type = "number" }} }}
        note = {{ type = "string", maxLength = 16 }}

        [output_schema]
        type = "object"
        required = ["scaled", "note"]
        """
    )


def write_tiny_bundle(root: Path, *, max_wait_ms: float = 1.0) -> Path:
    """A synthetic bundle with a local weight, in ``root`` (created)."""
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "scale.bin").write_bytes(SCALE_WEIGHT)
    sha = hashlib.sha256(SCALE_WEIGHT).hexdigest()
    (root / "agent.toml").write_text(tiny_manifest(sha, max_wait_ms=max_wait_ms))
    (root / "model.py").write_text(TINY_MODEL)
    return root


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Path:
    return write_tiny_bundle(tmp_path / "tiny")


@pytest.fixture
def tiny_runtime(tiny_bundle: Path) -> Iterator[AgentRuntime]:
    with AgentRuntime.load(tiny_bundle) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def embed_runtime() -> Iterator[AgentRuntime]:
    with AgentRuntime.load(builtin_bundle("embed")) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def search_runtime() -> Iterator[AgentRuntime]:
    with AgentRuntime.load(builtin_bundle("private-search")) as runtime:
        yield runtime
