"""`json.loads` for untrusted text, safe from stack exhaustion.

CPython's JSON decoder recurses once per nesting level and stops at the interpreter's recursion
limit, but libraries raise that limit (py_ecc, imported with eth-account, sets it to 100,000);
a document nested tens of thousands deep then overflows the C stack and kills the process.
`loads` parses a document with at most `CHEAP_LIMIT` brackets directly (it cannot nest deeper
than that, which the C stack survives) and scans a larger one first, refusing nesting deeper
than `MAX_DEPTH`. Every JSON this project reads from outside goes through it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["CHEAP_LIMIT", "MAX_DEPTH", "loads"]

MAX_DEPTH = 64
CHEAP_LIMIT = 4096
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def loads(
    text: str | bytes,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Parse JSON; raises `ValueError` (incl. `json.JSONDecodeError`, `UnicodeDecodeError`) on
    malformed or too deeply nested input."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    if text.count("[") + text.count("{") > CHEAP_LIMIT:
        _check_depth(text)
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _check_depth(text: str) -> None:
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub('""', text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
