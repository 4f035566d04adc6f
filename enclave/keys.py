"""The enclave's identity: a secp256k1 key (its chain address; signs fulfilments) and an
X25519 key (callers encrypt inputs to it), generated inside the TEE and sealed at rest.

Sealing: AES-256-GCM under the TEE's sealing key for the label `enclava/keys/v1`, which the TEE
derives from its secret and its measurement, so a restarted worker of the same measurement keeps
its identity and any other measurement cannot unseal it. Private keys never leave this object:
no API returns them, `repr` hides them, nothing logs them.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account
from eth_account.datastructures import SignedTransaction
from eth_account.messages import SignableMessage, defunct_hash_message
from eth_account.signers.local import LocalAccount

from attestation.binding import worker_report_data
from enclave.envelope import EnvelopeContext, open_request
from enclave.errors import SealingError, TeeUnavailableError
from enclave.tee.base import TeeBackend
from enclave.tee.state_file import write_private_json

log = logging.getLogger(__name__)

__all__ = ["SEALING_LABEL", "EnclaveKeys"]

SEALING_LABEL = "enclava/keys/v1"
_SECRET_SIZE = 32


class EnclaveKeys:
    """Load with `EnclaveKeys.load_or_create(backend, path)`; never construct from raw keys."""

    __slots__ = ("_account", "_signer", "_x25519")

    def __init__(self, account: LocalAccount, x25519: X25519PrivateKey) -> None:
        self._account = account
        self._signer = coincurve.PrivateKey(bytes(account.key))  # the same key, for the hot path
        self._x25519 = x25519

    def __repr__(self) -> str:
        return f"EnclaveKeys(address={self.address})"

    @classmethod
    def generate(cls) -> EnclaveKeys:
        return cls(Account.create(), X25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, backend: TeeBackend, path: Path) -> EnclaveKeys:
        """Unseal the keys at `path`, or generate and seal new ones there.

        A TEE without a sealing key (bare TDX: no KMS) gets keys for this boot only, never
        written anywhere: the worker registers them afresh after each restart, and answers it
        signed before the restart stay valid until their registration expires."""
        try:
            backend.sealing_key(SEALING_LABEL)
        except TeeUnavailableError as exc:
            log.warning("no sealing key (%s): worker keys live for this boot only", exc.message)
            return cls.generate()
        if path.exists():
            return cls._unseal(backend, path)
        keys = cls.generate()
        keys._seal(backend, path)
        return keys

    @property
    def address(self) -> str:
        """The checksummed chain address (0x...)."""
        return str(self._account.address)

    @property
    def address_bytes(self) -> bytes:
        return bytes.fromhex(self.address[2:])

    @property
    def x25519_public(self) -> bytes:
        return self._x25519.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def report_data(self, nonce: bytes) -> bytes:
        """REPORTDATA binding these keys to a verifier's 32-byte nonce."""
        return worker_report_data(self.address_bytes, self.x25519_public, nonce)

    def sign_transaction(self, transaction_dict: dict[str, Any]) -> SignedTransaction:
        """Sign a transaction from the worker's own address (`contracts.client.TxSigner`): how
        it withdraws what the agent contracts credited to it."""
        return self._account.sign_transaction(transaction_dict)

    def sign_text(self, text: str) -> bytes:
        """EIP-191 `personal_sign` of `text` (65 bytes r || s || v, v in {27, 28}): what
        `sign_message(encode_defunct(text=text))` gives, without eth-account's per-call object
        building (the gateway signs every answer)."""
        digest = bytes(defunct_hash_message(text=text))
        signature = self._signer.sign_recoverable(digest, hasher=None)
        return signature[:64] + bytes([signature[64] + 27])

    def sign_message(self, message: SignableMessage) -> bytes:
        """A 65-byte (r || s || v) secp256k1 signature of an EIP-191 / EIP-712 message."""
        return bytes(self._account.sign_message(message).signature)

    def open_request(self, envelope: bytes, context: EnvelopeContext) -> bytes:
        return open_request(self._x25519, envelope, context)

    def _secrets(self) -> bytes:
        x25519 = self._x25519.private_bytes_raw()
        return bytes(self._account.key) + x25519

    def _seal(self, backend: TeeBackend, path: Path) -> None:
        nonce = secrets.token_bytes(12)
        aead = AESGCM(backend.sealing_key(SEALING_LABEL))
        sealed = aead.encrypt(nonce, self._secrets(), SEALING_LABEL.encode())
        write_private_json(path, {"version": 1, "nonce": nonce.hex(), "sealed": sealed.hex()})

    @classmethod
    def _unseal(cls, backend: TeeBackend, path: Path) -> EnclaveKeys:
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") != 1:
                raise ValueError("unknown sealed-key version")
            nonce, sealed = bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["sealed"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SealingError(f"sealed keys at {path} are unreadable: {exc}") from None
        try:
            aead = AESGCM(backend.sealing_key(SEALING_LABEL))
            plain = aead.decrypt(nonce, sealed, SEALING_LABEL.encode())
        except (InvalidTag, ValueError):
            raise SealingError(
                f"sealed keys at {path} do not open here: another TEE or another measurement"
            ) from None
        if len(plain) != 2 * _SECRET_SIZE:
            raise SealingError(f"sealed keys at {path} have the wrong size")
        account = Account.from_key(plain[:_SECRET_SIZE])
        return cls(account, X25519PrivateKey.from_private_bytes(plain[_SECRET_SIZE:]))
