"""What a worker's quote binds: its chain address, its X25519 key and the verifier's nonce.

    REPORTDATA = SHA-512("enclava/worker/v1" || chain_address (20) || x25519_public (32)
                         || nonce (32))

One function builds it (the worker, inside the TEE) and one checks it (every verifier), so both
sides agree by construction.
"""

from __future__ import annotations

import hashlib
import hmac

from attestation.errors import BindingError

__all__ = ["WORKER_BINDING_LABEL", "check_worker_report_data", "worker_report_data"]

WORKER_BINDING_LABEL = b"enclava/worker/v1"


def worker_report_data(chain_address: bytes, x25519_public: bytes, nonce: bytes) -> bytes:
    """The 64-byte REPORTDATA binding a worker's keys to a verifier's fresh nonce."""
    for name, value, size in (
        ("chain address", chain_address, 20),
        ("X25519 public key", x25519_public, 32),
        ("nonce", nonce, 32),
    ):
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return hashlib.sha512(WORKER_BINDING_LABEL + chain_address + x25519_public + nonce).digest()


def check_worker_report_data(
    report_data: bytes, chain_address: bytes, x25519_public: bytes, nonce: bytes
) -> None:
    """Raise `BindingError` unless `report_data` binds exactly these keys and this nonce (a
    stale nonce, another worker's keys or another quote all fail here)."""
    expected = worker_report_data(chain_address, x25519_public, nonce)
    if not hmac.compare_digest(report_data, expected):
        raise BindingError(
            "report_data.binding",
            "REPORTDATA does not bind this worker's keys and nonce "
            "(SHA-512('enclava/worker/v1' || address || X25519 key || nonce))",
        )
