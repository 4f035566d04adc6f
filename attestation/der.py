"""A minimal strict DER reader: definite, minimally encoded lengths, bounds-checked.

Used where `cryptography` has already parsed the structure but we need the exact received bytes
(a CRL's TBSCertList for its signature) or an extension it does not know (Intel's SGX
extensions). `DerError` carries what is wrong; callers turn it into their own typed error.
"""

from __future__ import annotations

__all__ = [
    "BIT_STRING",
    "ENUMERATED",
    "INTEGER",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "DerError",
    "tlv",
]

INTEGER, BIT_STRING, OCTET_STRING, OID, ENUMERATED, SEQUENCE = 0x02, 0x03, 0x04, 0x06, 0x0A, 0x30


class DerError(ValueError):
    """Malformed DER."""


def tlv(data: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the TLV at `pos`, which must end by `limit`."""
    if limit - pos < 2:
        raise DerError("truncated TLV")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or limit - pos < n:
            raise DerError("bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        if length < 0x80 or data[pos] == 0:
            raise DerError("non-minimal length")
        pos += n
    if limit - pos < length:
        raise DerError("truncated value")
    return tag, pos, pos + length
