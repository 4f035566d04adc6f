"""A minimal strict DER reader (definite, minimally encoded lengths, bounds-checked) and the
matching writer.

Used where `cryptography` has already parsed the structure but we need the exact received bytes
(a CRL's TBSCertList for its signature) or an extension it does not know (Intel's SGX
extensions, which the simulated TEE also has to write). `DerError` carries what is wrong;
callers turn it into their own typed error.
"""

from __future__ import annotations

__all__ = [
    "BIT_STRING",
    "BOOLEAN",
    "ENUMERATED",
    "INTEGER",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "DerError",
    "tlv",
]

BOOLEAN, INTEGER, BIT_STRING, OCTET_STRING, OID, ENUMERATED, SEQUENCE = (
    0x01,
    0x02,
    0x03,
    0x04,
    0x06,
    0x0A,
    0x30,
)


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


def encode(tag: int, content: bytes) -> bytes:
    """One DER TLV with a minimal definite length."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def encode_uint(value: int, tag: int = INTEGER) -> bytes:
    """A non-negative INTEGER (or ENUMERATED) in minimal two's-complement form."""
    if value < 0:
        raise ValueError("only non-negative integers are encoded")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return encode(tag, body)


def encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))
