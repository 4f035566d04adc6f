"""Entry point of the test agent ``sum``: one compiled program, a masked sum over eight slots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from agents.runtime import Programs, ProgramSpec, arg_spec

SLOTS = 8


def _masked_sum(params: dict[str, Any], values: Any, mask: Any) -> Any:
    return jnp.sum(values * mask)


class SumAgent:
    def program(self) -> ProgramSpec:
        shape = (arg_spec((SLOTS,), jnp.float32), arg_spec((SLOTS,), jnp.float32))
        return ProgramSpec(fn=_masked_sum, params={}, buckets={"n8": shape})

    def run(self, inputs: Sequence[Any], programs: Programs) -> list[dict[str, Any]]:
        outputs = []
        for value in inputs:
            numbers = value["values"]
            values = np.zeros(SLOTS, np.float32)
            values[: len(numbers)] = numbers
            mask = (np.arange(SLOTS) < len(numbers)).astype(np.float32)
            total = float(programs("n8", values, mask))
            outputs.append({"sum": total, "count": len(numbers), "note": value.get("note", "")})
        return outputs


def create(context: Any) -> SumAgent:
    return SumAgent()
