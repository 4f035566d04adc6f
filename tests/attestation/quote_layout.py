"""Where the fields of a real DCAP quote sit, for tests that aim mutations at one region.

Computed from the quote's own length fields, independently of `attestation.quote`, so the
differential and fuzz tests do not trust the parser they test to tell them where to aim. Only
meant for well-formed quotes (the samples); offsets are absolute, integers little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["QuoteLayout", "Span", "quote_layout"]

_BODY_SIZE = {0x00000000: 384, 0x00000081: 584}  # v3/v4 body size by TEE type
_BEGIN = b"-----BEGIN CERTIFICATE-----\n"
_END = b"-----END CERTIFICATE-----"


@dataclass(frozen=True, slots=True)
class Span:
    """Byte range `[start, end)` of a quote."""

    start: int
    end: int

    def __contains__(self, pos: object) -> bool:
        return isinstance(pos, int) and self.start <= pos < self.end

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class QuoteLayout:
    version: int
    size: int
    fields: dict[str, Span]
    """Header type fields and every length / type field, by name."""
    signature_data: Span
    """Everything the `signature_data_len` field covers."""
    certification_data: Span
    """From the outer certification data type (v4/v5) or the QE report (v3) to the end of the
    signature data."""
    pck_chain: Span
    """The embedded PEM PCK certificate chain (certification data type 5)."""
    certificates: tuple[Span, ...]
    """The base64 body of each PEM certificate in the chain: leaf, PCK CA, root."""

    @property
    def padding(self) -> Span:
        """Bytes after the signature data, which no length field covers."""
        return Span(self.signature_data.end, self.size)


def quote_layout(quote: bytes) -> QuoteLayout:
    version, _, tee_type = struct.unpack_from("<HHI", quote, 0)
    fields = {
        "header.version": Span(0, 2),
        "header.attestation_key_type": Span(2, 4),
        "header.tee_type": Span(4, 8),
    }
    if version == 5:
        (body_size,) = struct.unpack_from("<I", quote, 50)
        fields["body.type"] = Span(48, 50)
        fields["body.size"] = Span(50, 54)
        pos = 54 + body_size
    else:
        pos = 48 + _BODY_SIZE[tee_type]
    fields["signature_data_len"] = Span(pos, pos + 4)
    (sig_len,) = struct.unpack_from("<I", quote, pos)
    signature_data = Span(pos + 4, pos + 4 + sig_len)
    pos = signature_data.start + 128  # ECDSA signature + attestation key
    certification_start = pos
    if version != 3:
        fields["certification_data.type"] = Span(pos, pos + 2)
        fields["certification_data.size"] = Span(pos + 2, pos + 6)
        pos += 6
    pos += 384 + 64  # QE report + its signature
    fields["qe_auth_data_len"] = Span(pos, pos + 2)
    (auth_len,) = struct.unpack_from("<H", quote, pos)
    pos += 2 + auth_len
    fields["pck_chain.type"] = Span(pos, pos + 2)
    fields["pck_chain.size"] = Span(pos + 2, pos + 6)
    (chain_len,) = struct.unpack_from("<I", quote, pos + 2)
    pck_chain = Span(pos + 6, pos + 6 + chain_len)
    return QuoteLayout(
        version=version,
        size=len(quote),
        fields=fields,
        signature_data=signature_data,
        certification_data=Span(certification_start, signature_data.end),
        pck_chain=pck_chain,
        certificates=_certificate_bodies(quote, pck_chain),
    )


def _certificate_bodies(quote: bytes, chain: Span) -> tuple[Span, ...]:
    out = []
    pos = quote.find(_BEGIN, chain.start, chain.end)
    while pos != -1:
        start = pos + len(_BEGIN)
        end = quote.find(_END, start, chain.end)
        out.append(Span(start, end))
        pos = quote.find(_BEGIN, end, chain.end)
    return tuple(out)
