"""Canonical JSON: the exact bytes an agent's reply is signed and hashed over.

Encoding: UTF-8, object keys sorted by code point, no insignificant whitespace (``,`` and ``:``
separators), non-ASCII characters written as themselves, and every float rounded with Python's
correctly rounded ``round(x, float_decimals)`` and then written in its shortest round-trip form
(``repr``); ``-0.0`` becomes ``0.0``. NaN and infinities are refused. Rounding absorbs last-bit
differences in float results, but it is no substitute for computing the same bits (a value near a
rounding boundary can still flip), which is why the runtime also makes each item's computation
independent of batch composition (see ``agents.runtime``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from agents.errors import OutputError

__all__ = ["canonical_json", "canonicalize", "dump_canonical"]


def canonicalize(value: Any, float_decimals: int) -> Any:
    """A JSON-ready copy of ``value``: floats rounded, tuples and numpy values made plain."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OutputError(f"non-finite number {value} in output")
        rounded = round(value, float_decimals)
        return 0.0 if rounded == 0 else rounded
    if isinstance(value, Mapping):
        return {str(k): canonicalize(v, float_decimals) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonicalize(v, float_decimals) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return canonicalize(tolist(), float_decimals)
    raise OutputError(f"value of type {type(value).__name__} cannot be encoded as JSON")


def canonical_json(value: Any, float_decimals: int) -> bytes:
    """Encode ``value`` canonically (see the module docstring)."""
    return dump_canonical(canonicalize(value, float_decimals))


def dump_canonical(value: Any) -> bytes:
    """Encode a value that ``canonicalize`` returned (floats rounded) as canonical JSON bytes."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
