"""How a quote arrives in a request body: hex (`0x` optional) or base64 (standard or URL-safe,
padding and line breaks optional), capped at the configured size."""

from __future__ import annotations

import binascii
import re

from attestation.service.errors import MalformedRequestError, RequestTooLargeError

__all__ = ["decode_quote"]

_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]+")
_URLSAFE = str.maketrans("-_", "+/")


def decode_quote(text: str, limit: int) -> bytes:
    """A quote given as hex (all hex digits, `0x` optional) or else base64 (standard or
    URL-safe, padding optional). A base64 quote is never all hex digits in practice: its
    version/key-type header alone encodes to non-hex characters."""
    s = text.strip()
    if len(s) > 2 * limit + 2:
        raise RequestTooLargeError(f"quote: more than {limit} bytes")
    if _HEX.fullmatch(s):
        digits = s[2:] if s[:2] in ("0x", "0X") else s
        if len(digits) % 2:
            raise _bad_encoding("odd number of hex digits")
        raw = bytes.fromhex(digits)
    else:
        raw = _base64(s)
    if not raw:
        raise _bad_encoding("empty")
    if len(raw) > limit:
        raise RequestTooLargeError(f"quote: {len(raw)} bytes, more than {limit}")
    return raw


def _base64(text: str) -> bytes:
    """Strict base64 (C fast path), else tolerant of line breaks and the URL-safe alphabet."""
    try:
        return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    compact = "".join(text.split()).translate(_URLSAFE)
    try:
        return binascii.a2b_base64(compact + "=" * (-len(compact) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        raise _bad_encoding("neither hex nor base64") from None


def _bad_encoding(problem: str) -> MalformedRequestError:
    return MalformedRequestError(f"quote: {problem}", code="malformed_quote_encoding")
