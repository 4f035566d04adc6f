"""Untrusted JSON in, typed values out: strict parsing with limits, and a small JSON Schema subset.

Parsing (``parse_json``) enforces, in this order and before any model work: the byte limit, the
nesting-depth limit (checked by a linear scan, so a hostile ``[[[[…`` never reaches the recursive
decoder), UTF-8, well-formed JSON, no duplicate object keys (ambiguous input is refused, not
resolved), no NaN or infinities.

``Schema`` accepts the subset of JSON Schema (2020-12 semantics) that bundles use: ``type`` (a name
or a list), ``properties``, ``required``, ``additionalProperties`` (boolean only), ``items``,
``minItems``/``maxItems``, ``minLength``/``maxLength`` (in code points), ``minimum``/``maximum``,
``enum``, and the annotations ``title``, ``description``, ``default`` and ``$schema``. Any other
keyword is a ``BundleError`` when the manifest is loaded: a constraint the validator would silently
ignore is worse than no bundle. ``integer`` means a JSON number without a fraction or exponent;
booleans are never numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agents.errors import BundleError, InputError, InputTooLargeError

__all__ = ["Schema", "parse_json"]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_ANNOTATIONS = frozenset({"title", "description", "default", "$schema"})
_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "enum",
    }
)


def parse_json(data: bytes | str, *, max_bytes: int, max_depth: int) -> Any:
    """Decode one untrusted JSON document; ``max_bytes`` and ``max_depth`` are checked first."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise InputTooLargeError(f"input is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"input is not UTF-8 (byte {exc.start})") from None
    _check_depth(text, max_depth)
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"malformed JSON: {exc}") from None


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > max_depth:
            raise InputTooLargeError(f"input nests deeper than {max_depth} levels")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InputError(f"duplicate object key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise InputError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise InputError(f"number {literal[:32]} is out of range")
    return value


class Schema:
    """A checked JSON Schema (the subset above); ``validate`` raises ``InputError``."""

    def __init__(self, document: Mapping[str, Any], *, where: str = "schema") -> None:
        _check_schema(document, where)
        self.document = document

    def validate(self, value: Any) -> None:
        _validate(self.document, value, "$")


def _check_schema(node: Any, where: str) -> None:
    if not isinstance(node, Mapping):
        raise BundleError(f"{where}: a schema must be a table")
    unknown = set(node) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise BundleError(f"{where}: unsupported schema keyword(s) {sorted(unknown)}")
    kinds = node.get("type", list(_TYPES))
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not isinstance(kinds, list) or not kinds or any(k not in _TYPES for k in kinds):
        raise BundleError(f"{where}.type: expected one of {_TYPES} or a list of them")
    for key in ("minItems", "maxItems", "minLength", "maxLength"):
        if key in node and (not _is_int(node[key]) or node[key] < 0):
            raise BundleError(f"{where}.{key}: expected a non-negative integer")
    for key in ("minimum", "maximum"):
        if key in node and not _is_number(node[key]):
            raise BundleError(f"{where}.{key}: expected a number")
    if "additionalProperties" in node and not isinstance(node["additionalProperties"], bool):
        raise BundleError(f"{where}.additionalProperties: only true or false is supported")
    if "enum" in node and not isinstance(node["enum"], list):
        raise BundleError(f"{where}.enum: expected a list")
    required = node.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise BundleError(f"{where}.required: expected a list of names")
    properties = node.get("properties", {})
    if not isinstance(properties, Mapping):
        raise BundleError(f"{where}.properties: expected a table")
    for name, child in properties.items():
        _check_schema(child, f"{where}.properties.{name}")
    if "items" in node:
        _check_schema(node["items"], f"{where}.items")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _validate(node: Mapping[str, Any], value: Any, path: str) -> None:
    kinds = node.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    actual = _type_of(value)
    if kinds is not None and not (actual in kinds or (actual == "integer" and "number" in kinds)):
        raise InputError(f"expected {' or '.join(kinds)}, got {actual}", path=path)
    if "enum" in node and value not in node["enum"]:
        raise InputError(f"expected one of {node['enum']}", path=path)
    if actual == "string":
        _check_bounds(len(value), node, "minLength", "maxLength", "characters", path)
    elif actual in ("integer", "number"):
        _check_range(value, node, path)
    elif actual == "array":
        _check_bounds(len(value), node, "minItems", "maxItems", "items", path)
        if "items" in node:
            for index, item in enumerate(value):
                _validate(node["items"], item, f"{path}[{index}]")
    elif actual == "object":
        _validate_object(node, value, path)


def _check_bounds(
    size: int, node: Mapping[str, Any], low: str, high: str, unit: str, path: str
) -> None:
    if high in node and size > node[high]:
        raise InputTooLargeError(f"has {size} {unit}, at most {node[high]} allowed", path=path)
    if low in node and size < node[low]:
        raise InputError(f"has {size} {unit}, at least {node[low]} required", path=path)


def _check_range(value: float, node: Mapping[str, Any], path: str) -> None:
    if "minimum" in node and value < node["minimum"]:
        raise InputError(f"{value} is below the minimum {node['minimum']}", path=path)
    if "maximum" in node and value > node["maximum"]:
        raise InputError(f"{value} is above the maximum {node['maximum']}", path=path)


def _validate_object(node: Mapping[str, Any], value: dict[str, Any], path: str) -> None:
    properties: Mapping[str, Any] = node.get("properties", {})
    missing: Sequence[str] = [name for name in node.get("required", []) if name not in value]
    if missing:
        raise InputError(f"missing required field(s) {missing}", path=path)
    if node.get("additionalProperties", True) is False:
        extra = sorted(set(value) - set(properties))
        if extra:
            raise InputError(f"unexpected field(s) {extra}", path=path)
    for name, child in properties.items():
        if name in value:
            _validate(child, value[name], f"{path}.{name}")
