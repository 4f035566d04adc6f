"""ECDSA-P256 signatures as DCAP carries them: raw big-endian r || s, 64 bytes."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from attestation.errors import SignatureError

__all__ = ["sign_raw_ecdsa", "verify_raw_ecdsa"]

_ECDSA = ec.ECDSA(hashes.SHA256())


def verify_raw_ecdsa(
    key: ec.EllipticCurvePublicKey, raw_sig: bytes, data: bytes, check: str, message: str
) -> None:
    if len(raw_sig) != 64:
        raise SignatureError(check, f"signature must be 64 bytes (r || s), got {len(raw_sig)}")
    r = int.from_bytes(raw_sig[:32], "big")
    s = int.from_bytes(raw_sig[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA)
    except InvalidSignature:
        raise SignatureError(check, message) from None


def sign_raw_ecdsa(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256/SHA-256 over `data` in DCAP's wire form (a simulated TEE signs like this)."""
    r, s = decode_dss_signature(key.sign(data, _ECDSA))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
