"""What the attestation service signs: ES256 attestation tokens (JWT) and EIP-712 verdicts.

**Tokens** are JWTs signed with ES256 (ECDSA P-256, SHA-256) under the key published in the
service's JWKS; the header names it by `kid`, the key's RFC 7638 thumbprint. Any JWT library
verifies them with that JWKS (`TokenIssuer.jwks`).

**EIP-712 verdicts** are the struct the on-chain `SignedVerdictVerifier` checks:

    domain  EIP712Domain{name "Enclava SignedVerdictVerifier", version "1", chainId,
                         verifyingContract}
    Verdict(address worker,bytes32 measurement,uint8 tcbStatus,bytes32 quoteHash,
            uint64 expiresAt)

This module keeps its own copy of the definition (`attestation` must not import `contracts`);
tests/test_cross_package.py checks that its digests and evidence equal `contracts.typed_data`'s.
The fields have one canonical meaning, shared by the service, the worker and the deployer:

* `measurement` = SHA-256(agent bundle digest), see `agent_measurement_id`: the 48-byte
  SHA-384 bundle digest an `enclava.agent` RTMR3 event carries, hashed to the 32 bytes a
  `bytes32` holds. `enclava deploy` pins the same value in the agent contract.
* `quoteHash` = SHA-256 of the quote (its own length; bytes after it are not part of it): the
  verdict's `quote_sha256`.
* `tcbStatus` = `TCB_STATUS_CODES[status]` (Revoked is never signed).
* `expiresAt` = Unix seconds, at most the earliest `nextUpdate` of the collateral used.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey

__all__ = [
    "EIP712_DOMAIN_NAME",
    "EIP712_DOMAIN_VERSION",
    "TCB_STATUS_CODES",
    "VERDICT_TYPE",
    "Eip712Domain",
    "OnchainVerdict",
    "SignedVerdict",
    "TokenIssuer",
    "VerdictSigner",
    "agent_measurement_id",
    "jwk_thumbprint",
    "public_jwk",
    "verdict_digest",
    "verdict_evidence",
]

EIP712_DOMAIN_NAME = "Enclava SignedVerdictVerifier"
EIP712_DOMAIN_VERSION = "1"
VERDICT_TYPE = (
    "Verdict(address worker,bytes32 measurement,uint8 tcbStatus,bytes32 quoteHash,uint64 expiresAt)"
)
# tcbStatus as signed on chain; the same table as contracts.typed_data.TCB_STATUS_CODES.
TCB_STATUS_CODES: Mapping[str, int] = {
    "UpToDate": 0,
    "SWHardeningNeeded": 1,
    "ConfigurationNeeded": 2,
    "ConfigurationAndSWHardeningNeeded": 3,
    "OutOfDate": 4,
    "OutOfDateConfigurationNeeded": 5,
}
_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_VERDICT_TYPEHASH = keccak(VERDICT_TYPE.encode())
_NAME_HASH = keccak(EIP712_DOMAIN_NAME.encode())
_VERSION_HASH = keccak(EIP712_DOMAIN_VERSION.encode())
_UINT64_MAX = 2**64 - 1


def agent_measurement_id(bundle_digest: bytes) -> bytes:
    """The on-chain (`bytes32`) measurement of an agent: SHA-256 of its 48-byte bundle digest."""
    if len(bundle_digest) != 48:
        raise ValueError("an agent bundle digest is a 48-byte SHA-384")
    return hashlib.sha256(bundle_digest).digest()


def _address(value: str) -> bytes:
    text = value.removeprefix("0x").removeprefix("0X")
    if len(text) != 40:
        raise ValueError(f"{value!r} is not a 20-byte address")
    return bytes.fromhex(text)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class Eip712Domain:
    """Where a verdict is valid: one `SignedVerdictVerifier` on one chain."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        if not 0 <= self.chain_id < 2**256:
            raise ValueError("chain id out of range")
        _address(self.verifying_contract)

    @property
    def separator(self) -> bytes:
        return keccak(
            _DOMAIN_TYPEHASH
            + _NAME_HASH
            + _VERSION_HASH
            + _word(self.chain_id)
            + bytes(12)
            + _address(self.verifying_contract)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": EIP712_DOMAIN_NAME,
            "version": EIP712_DOMAIN_VERSION,
            "chain_id": self.chain_id,
            "verifying_contract": self.verifying_contract,
        }


@dataclass(frozen=True, slots=True)
class OnchainVerdict:
    """The signed struct's values. `tcb_status` is the status name (see `TCB_STATUS_CODES`)."""

    worker: str
    measurement: bytes
    tcb_status: str
    quote_hash: bytes
    expires_at: int

    def __post_init__(self) -> None:
        _address(self.worker)
        if len(self.measurement) != 32 or len(self.quote_hash) != 32:
            raise ValueError("measurement and quote hash are 32 bytes")
        if self.tcb_status not in TCB_STATUS_CODES:
            raise ValueError(f"TCB status {self.tcb_status!r} is never signed")
        if not 0 <= self.expires_at <= _UINT64_MAX:
            raise ValueError("expiresAt does not fit a uint64")

    @property
    def struct_hash(self) -> bytes:
        return keccak(
            _VERDICT_TYPEHASH
            + bytes(12)
            + _address(self.worker)
            + self.measurement
            + _word(TCB_STATUS_CODES[self.tcb_status])
            + self.quote_hash
            + _word(self.expires_at)
        )


def verdict_digest(verdict: OnchainVerdict, domain: Eip712Domain) -> bytes:
    """The EIP-712 digest `SignedVerdictVerifier.verdictDigest` computes for `verdict`."""
    return keccak(b"\x19\x01" + domain.separator + verdict.struct_hash)


def verdict_evidence(verdict: OnchainVerdict, signature: bytes) -> bytes:
    """`abi.encode(worker, measurement, tcbStatus, quoteHash, expiresAt, signature)`: what
    `WorkerRegistry.register` takes with the `SignedVerdictVerifier`."""
    padded = signature + bytes(-len(signature) % 32)
    return (
        bytes(12)
        + _address(verdict.worker)
        + verdict.measurement
        + _word(TCB_STATUS_CODES[verdict.tcb_status])
        + verdict.quote_hash
        + _word(verdict.expires_at)
        + _word(6 * 32)
        + _word(len(signature))
        + padded
    )


@dataclass(frozen=True, slots=True)
class SignedVerdict:
    verdict: OnchainVerdict
    domain: Eip712Domain
    signer: str
    digest: bytes
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "worker": v.worker,
            "measurement": "0x" + v.measurement.hex(),
            "tcb_status": v.tcb_status,
            "tcb_status_code": TCB_STATUS_CODES[v.tcb_status],
            "quote_hash": "0x" + v.quote_hash.hex(),
            "expires_at": v.expires_at,
            "domain": self.domain.to_dict(),
            "signer": self.signer,
            "digest": "0x" + self.digest.hex(),
            "signature": "0x" + self.signature.hex(),
            "evidence": "0x" + verdict_evidence(v, self.signature).hex(),
        }


class VerdictSigner:
    """Signs EIP-712 verdicts with the service's secp256k1 key. Sign only verdicts the policy
    accepted: the contract checks the signer, the expiry and the worker, not the TCB status."""

    def __init__(self, account: LocalAccount) -> None:
        self.address = str(account.address)
        self._key = PrivateKey(bytes(account.key))  # parsed once, not per signature
        self._separators: dict[Eip712Domain, bytes] = {}

    def sign(self, verdict: OnchainVerdict, domain: Eip712Domain) -> SignedVerdict:
        separator = self._separators.get(domain)
        if separator is None:
            separator = domain.separator
            if len(self._separators) < 64:
                self._separators[domain] = separator
        digest = keccak(b"\x19\x01" + separator + verdict.struct_hash)
        v, r, s = self._key.sign_msg_hash(digest).vrs
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + v])
        return SignedVerdict(verdict, domain, self.address, digest, signature)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The RFC 7517 JWK members of a P-256 public key (kty, crv, x, y)."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 needs a P-256 key")
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def jwk_thumbprint(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 7638 thumbprint: SHA-256 over the required members, sorted, no whitespace."""
    canonical = json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


class TokenIssuer:
    """Issues ES256 attestation tokens under one P-256 key; `jwks` publishes it."""

    algorithm = "ES256"

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str) -> None:
        public = key.public_key()
        self._key = key
        self.issuer = issuer
        self.thumbprint = jwk_thumbprint(public)
        self.kid = _b64url(self.thumbprint)
        self._jwk = {**public_jwk(public), "use": "sig", "alg": self.algorithm, "kid": self.kid}
        self._headers = {"kid": self.kid, "typ": "JWT"}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    def issue(self, claims: Mapping[str, Any], *, now: datetime, expires_at: datetime) -> str:
        """A token carrying `claims` plus `iss`, `iat`, `nbf` and `exp` (Unix seconds)."""
        issued = int(now.timestamp())
        payload = {
            **claims,
            "iss": self.issuer,
            "iat": issued,
            "nbf": issued,
            "exp": int(expires_at.timestamp()),
        }
        return jwt.encode(payload, self._key, algorithm=self.algorithm, headers=self._headers)
