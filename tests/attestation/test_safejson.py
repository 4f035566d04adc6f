"""Untrusted JSON never exhausts the C stack, even with the recursion limit raised (py_ecc,
imported with eth-account, raises it to 100,000 in any process that signs chain messages)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attestation import safejson


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000, "[" * 5000 + "]" * 5000])
def test_deep_nesting_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="nested"):
        safejson.loads(text)


def test_ordinary_documents_parse() -> None:
    assert safejson.loads(b'{"a": [1, {"b": "[[[["}]}') == {"a": [1, {"b": "[[[["}]}
    wide = "[" + ",".join(["[1]"] * 10_000) + "]"
    assert len(safejson.loads(wide)) == 10_000


def test_deep_nesting_survives_a_raised_recursion_limit() -> None:
    """In a fresh interpreter with the limit at 100,000, plain json.loads would segfault."""
    program = (
        "import sys; sys.setrecursionlimit(100_000)\n"
        "from attestation import safejson\n"
        "for doc in ('[' * 200_000, '{\"a\":' * 200_000):\n"
        "    try:\n"
        "        safejson.loads(doc)\n"
        "    except ValueError:\n"
        "        pass\n"
        "print('survived')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "survived"
