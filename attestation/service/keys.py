"""The service's signing keys, and what its own quote binds.

Two keys: a secp256k1 account that signs EIP-712 verdicts (its address is what a
`SignedVerdictVerifier` trusts) and a P-256 key that signs ES256 tokens (published as a JWKS).
They come from a key file (`ServiceKeys.load`; JSON, mode 0600) or, inside a TEE, from a
32-byte sealing secret (`ServiceKeys.from_seed`): the same TEE running the same measurement
derives the same keys, so the signer address survives restarts and never leaves the TEE.

A client checks that the service itself runs in a TEE with `GET /v1/attestation?nonce=`: the
quote's REPORTDATA is `service_report_data(signer, jwk_thumbprint, nonce)`:

    SHA-512("enclava/attestation-service/v1" || signer address (20) ||
            RFC 7638 thumbprint of the token key (32) || nonce (32))
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_account.signers.local import LocalAccount

from attestation import safejson
from attestation.eventlog import RuntimeEvent
from attestation.service.errors import KeyFileError

__all__ = [
    "SERVICE_BINDING_LABEL",
    "QuotingBackend",
    "SelfAttestor",
    "SelfEvidence",
    "ServiceKeys",
    "backend_attestor",
    "service_report_data",
]

SERVICE_BINDING_LABEL = b"enclava/attestation-service/v1"
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_KEY_FILE_VERSION = 1


def _scalar(seed: bytes, label: str, order: int) -> int:
    """A private scalar in [1, order - 1] from `seed` (HKDF-SHA256, 48 bytes: negligible bias)."""
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=48,
        salt=SERVICE_BINDING_LABEL,
        info=f"enclava/attestation-service/{label}".encode(),
    ).derive(seed)
    return int.from_bytes(okm, "big") % (order - 1) + 1


@dataclass(frozen=True)
class ServiceKeys:
    """The verdict signer (secp256k1) and the token key (P-256). `repr` shows no secret."""

    eip712: LocalAccount = field(repr=False)
    jwt: ec.EllipticCurvePrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.jwt.curve, ec.SECP256R1):
            raise ValueError("the token key must be a P-256 key")

    def __repr__(self) -> str:
        return f"ServiceKeys(signer={self.eip712.address})"

    @classmethod
    def generate(cls) -> ServiceKeys:
        return cls(Account.create(), ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_seed(cls, seed: bytes) -> ServiceKeys:
        """Derive both keys from a secret of at least 32 bytes (e.g. a TEE sealing key)."""
        if len(seed) < 32:
            raise ValueError("a key seed needs at least 32 bytes")
        account = Account.from_key(_scalar(seed, "secp256k1", _SECP256K1_N).to_bytes(32, "big"))
        token_key = ec.derive_private_key(_scalar(seed, "p256", _P256_N), ec.SECP256R1())
        return cls(account, token_key)

    @classmethod
    def load(cls, path: Path) -> ServiceKeys:
        """Read a key file written by `save`. Raises `KeyFileError` (never echoing a key)."""
        try:
            doc = safejson.loads(path.read_bytes())
            if not isinstance(doc, dict) or doc.get("version") != _KEY_FILE_VERSION:
                raise ValueError("not a version 1 key file")
            account = Account.from_key(bytes.fromhex(doc["secp256k1"]))
            scalar = int.from_bytes(bytes.fromhex(doc["p256"]), "big")
            token_key = ec.derive_private_key(scalar, ec.SECP256R1())
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError) as exc:
            problem = type(exc).__name__ if isinstance(exc, KeyError | TypeError) else "invalid"
            raise KeyFileError(f"key file {path} is not a service key file ({problem})") from None
        return cls(account, token_key)

    def save(self, path: Path) -> None:
        """Write both private keys to `path` (created with mode 0600; never overwritten)."""
        doc: dict[str, Any] = {
            "version": _KEY_FILE_VERSION,
            "signer": self.eip712.address,
            "secp256k1": bytes(self.eip712.key).hex(),
            "p256": self.jwt.private_numbers().private_value.to_bytes(32, "big").hex(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileError(f"key file {path} exists; not overwriting it") from None
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(doc, indent=2) + "\n")


def service_report_data(signer: str, thumbprint: bytes, nonce: bytes) -> bytes:
    """The 64-byte REPORTDATA of the service's own quote (see the module docstring)."""
    address = bytes.fromhex(signer.removeprefix("0x"))
    for name, value, size in (
        ("signer address", address, 20),
        ("key thumbprint", thumbprint, 32),
        ("nonce", nonce, 32),
    ):
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return hashlib.sha512(SERVICE_BINDING_LABEL + address + thumbprint + nonce).digest()


@dataclass(frozen=True, slots=True)
class SelfEvidence:
    """The service's own evidence: its TEE kind, a quote over the REPORTDATA it was asked for,
    and its runtime event log."""

    tee: str
    quote: bytes
    event_log: tuple[RuntimeEvent, ...] = ()


SelfAttestor = Callable[[bytes], SelfEvidence]
"""Produces the service's evidence for a 64-byte REPORTDATA (may block: called off the loop)."""


class QuotingBackend(Protocol):
    """What `backend_attestor` needs of a TEE backend (`enclave.tee`'s backends fit)."""

    @property
    def kind(self) -> str: ...

    def quote(self, report_data: bytes) -> bytes: ...

    def event_log(self) -> tuple[RuntimeEvent, ...]: ...


def backend_attestor(backend: QuotingBackend) -> SelfAttestor:
    """A `SelfAttestor` over a TEE backend (the real one in a TEE, the simulator in dev)."""

    def attest(report_data: bytes) -> SelfEvidence:
        return SelfEvidence(backend.kind, backend.quote(report_data), backend.event_log())

    return attest
