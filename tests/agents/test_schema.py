"""Untrusted JSON parsing and the JSON Schema subset: clear errors, limits before decoding."""

from __future__ import annotations

from typing import Any

import pytest

from agents.canonical import canonical_json
from agents.errors import BundleError, InputError, InputTooLargeError, OutputError
from agents.schema import Schema, parse_json

LIMITS = {"max_bytes": 1024, "max_depth": 4}
SCHEMA = Schema(
    {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "input": {
                "type": ["string", "array"],
                "maxLength": 5,
                "maxItems": 2,
                "minItems": 1,
                "items": {"type": "string", "maxLength": 5},
            },
            "k": {"type": "integer", "minimum": 1, "maximum": 3},
            "mode": {"enum": ["fast", "exact"]},
        },
    }
)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"x" * 1025, InputTooLargeError, "1025 bytes, the limit is 1024"),
        (b"[[[[[1]]]]]", InputTooLargeError, "deeper than 4"),
        (b'{"input": ', InputError, "malformed JSON"),
        (b'{"a": 1, "a": 2}', InputError, "duplicate object key 'a'"),
        (b'{"a": NaN}', InputError, "NaN is not a JSON number"),
        (b'{"a": 1e999}', InputError, "out of range"),
        (b"\xff\xfe", InputError, "not UTF-8"),
    ],
)
def test_parse_json_rejects_with_a_clear_message(
    data: bytes, error: type[InputError], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        parse_json(data, **LIMITS)
    assert isinstance(caught.value, ValueError)


def test_integer_past_the_digit_limit_is_an_input_error() -> None:
    with pytest.raises(InputError, match="malformed JSON"):
        parse_json(b"9" * 5000, max_bytes=10_000, max_depth=4)


def test_brackets_inside_strings_do_not_count_towards_depth() -> None:
    assert parse_json(b'{"a": "[[[[[[[[[[\\"]]]"}', **LIMITS) == {"a": '[[[[[[[[[["]]]'}


def test_depth_check_is_linear_on_hostile_nesting() -> None:
    with pytest.raises(InputTooLargeError):
        parse_json(b"[" * 200_000, max_bytes=1 << 20, max_depth=8)


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ([], "$", "expected object, got array"),
        ({}, "$", "missing required field"),
        ({"input": 5}, "$.input", "expected string or array, got integer"),
        ({"input": ["ok", 7]}, "$.input[1]", "expected string, got integer"),
        ({"input": "toolong"}, "$.input", "has 7 characters, at most 5"),
        ({"input": ["a", "b", "c"]}, "$.input", "has 3 items, at most 2"),
        ({"input": []}, "$.input", "at least 1 required"),
        ({"input": "a", "extra": 1}, "$", "unexpected field(s) ['extra']"),
        ({"input": "a", "k": True}, "$.k", "expected integer, got boolean"),
        ({"input": "a", "k": 2.0}, "$.k", "expected integer, got number"),
        ({"input": "a", "k": 9}, "$.k", "above the maximum 3"),
        ({"input": "a", "mode": "slow"}, "$.mode", "expected one of"),
    ],
)
def test_schema_errors_name_the_path(value: object, path: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        SCHEMA.validate(value)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_valid_values_pass() -> None:
    SCHEMA.validate({"input": "hi"})
    SCHEMA.validate({"input": ["a", "b"], "k": 3, "mode": "fast"})


@pytest.mark.parametrize(
    "document",
    [
        {"type": "object", "patternProperties": {}},
        {"type": "string", "format": "email"},
        {"type": "strnig"},
        {"type": "array", "items": {"oneOf": []}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"maxLength": -1},
    ],
)
def test_unsupported_schema_is_refused_when_the_manifest_loads(document: dict[str, Any]) -> None:
    with pytest.raises(BundleError):
        Schema(document)


def test_canonical_json_sorts_keys_rounds_floats_and_keeps_unicode() -> None:
    body = canonical_json({"b": [0.12345678, -0.0000001, 2], "a": "straße 😀"}, 6)
    assert body == '{"a":"straße 😀","b":[0.123457,0.0,2]}'.encode()


def test_canonical_json_refuses_non_finite_numbers() -> None:
    with pytest.raises(OutputError):
        canonical_json({"x": float("nan")}, 6)
