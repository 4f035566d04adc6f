"""Where an agent's programs run: one device, or data-parallel over several with `jax.sharding`.

On one device the parameters are placed on it and each bucket is lowered as is. Over N devices
(the GPUs of one host, say) the runtime builds a one-axis mesh `("batch",)`: the parameters are
replicated on every device and each bucket argument whose leading dimension divides by N is split
along it (the others are replicated), so XLA partitions the program (SPMD) and inserts the
collectives a reduction across the split needs. Results are the same values as on one device up
to float summation order.

The sharding is part of the lowered program: a bucket's StableHLO text — and so its program
digest, which the worker measures into RTMR3 — names the mesh size and the split arguments. A
sharded deployment therefore attests its own program digests, distinct from a single-device one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["BATCH_AXIS", "lower_buckets"]

BATCH_AXIS = "batch"


def lower_buckets(
    fn: Any, params: Any, buckets: dict[str, tuple[Any, ...]], devices: Sequence[jax.Device]
) -> tuple[Any, dict[str, Any]]:
    """The placed parameters and each bucket's `Lowered` program over `devices` (at least one).
    `buckets` holds `jax.ShapeDtypeStruct` arguments, `params` a pytree of arrays."""
    if not devices:
        raise ValueError("an agent needs at least one device")
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)  # type: ignore[no-untyped-call]
    if len(devices) == 1:
        placed = jax.device_put(params, devices[0])
        jitted = jax.jit(fn)
        return placed, {name: jitted.lower(shapes, *args) for name, args in buckets.items()}
    mesh = Mesh(np.array(list(devices)), (BATCH_AXIS,))
    replicated = NamedSharding(mesh, PartitionSpec())  # type: ignore[no-untyped-call]
    split = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))  # type: ignore[no-untyped-call]
    placed = jax.device_put(params, replicated)
    lowered = {}
    for name, args in buckets.items():
        shardings = tuple(
            split if a.shape and a.shape[0] % len(devices) == 0 else replicated for a in args
        )
        jitted = jax.jit(fn, in_shardings=(replicated, *shardings))
        lowered[name] = jitted.lower(shapes, *args)
    return placed, lowered
