"""Entry point of the bench agent ``work``: ``LAYERS`` dense tanh layers, one request at a time.

Each request runs the whole compiled program once on its own 64x256 activation, so the cost per
request is fixed and independent of how the batcher groups requests. The weights are generated
from a constant seed in the (measured) source, so every worker computes the same function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agents.runtime import Programs, ProgramSpec, arg_spec

ROWS, WIDTH, LAYERS = 64, 256, 1600


def _layers(params: dict[str, Any], x: Any) -> Any:
    def layer(_: int, h: Any) -> Any:
        return jnp.tanh(h @ params["w"])

    return jnp.sum(jax.lax.fori_loop(0, LAYERS, layer, x))


class WorkAgent:
    def program(self) -> ProgramSpec:
        weights = np.random.default_rng(0).standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)
        params = {"w": weights.astype(np.float32)}
        return ProgramSpec(
            fn=_layers, params=params, buckets={"x": (arg_spec((ROWS, WIDTH), jnp.float32),)}
        )

    def run(self, inputs: Sequence[Any], programs: Programs) -> list[dict[str, Any]]:
        outputs = []
        for value in inputs:
            x = np.random.default_rng(value["seed"]).standard_normal((ROWS, WIDTH))
            checksum = float(programs("x", x.astype(np.float32)))
            outputs.append({"seed": value["seed"], "checksum": checksum})
        return outputs


def create(context: Any) -> WorkAgent:
    return WorkAgent()
