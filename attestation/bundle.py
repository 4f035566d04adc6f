"""The attestation bundle's format: a TDX quote, its event log and the GPUs' reports, answering
one request nonce (verified by `attestation.evidence.verify_bundle`).

JSON (what `GET /v1/attestation` of a worker gateway returns, and bundle files): `quote` base64,
`event_log` dstack's layout, `nonce` and `x25519_public` hex, `address` 0x hex, `tee`, and
`gpus`: `[{"report": base64, "cert_chain": PEM text, "cc_state": {"enabled", "devtools",
"environment"}, "uuid", "arch"}]`; other keys (agents, chain id) are ignored here.

`bundle_digest` names a bundle (the quote's hash when it has no GPUs), so a verdict can point at
what was judged and anyone can fetch the bundle and verify it again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attestation.errors import BundleFormatError
from attestation.eventlog import RuntimeEvent, events_from_json, events_to_json

__all__ = [
    "BUNDLE_DIGEST_LABEL",
    "BundleGpu",
    "EvidenceBundle",
    "GpuCcState",
    "bundle_digest",
]

BUNDLE_DIGEST_LABEL = b"enclava/bundle/v1"


@dataclass(frozen=True, slots=True)
class GpuCcState:
    """The CC state the driver inside the TD reports for a GPU (not signed by the GPU):
    `enabled` CC mode on, `devtools` CC with developer tools, `environment` prod / sim / ..."""

    enabled: bool
    devtools: bool
    environment: str


@dataclass(frozen=True, slots=True)
class BundleGpu:
    """One GPU's part of a bundle: its SPDM report, its PEM certificate chain (leaf first, as
    NVML returns it) and the CC state reported beside them."""

    report: bytes
    cert_chain: bytes
    cc_state: GpuCcState
    uuid: str = ""
    arch: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "report": base64.b64encode(self.report).decode(),
            "cert_chain": self.cert_chain.decode("ascii"),
            "cc_state": {
                "enabled": self.cc_state.enabled,
                "devtools": self.cc_state.devtools,
                "environment": self.cc_state.environment,
            },
            "uuid": self.uuid,
            "arch": self.arch,
        }

    @classmethod
    def from_json(cls, doc: Any) -> BundleGpu:
        try:
            cc = doc["cc_state"]
            state = GpuCcState(_bool(cc["enabled"]), _bool(cc["devtools"]), _str(cc["environment"]))
            return cls(
                report=base64.b64decode(_str(doc["report"]), validate=True),
                cert_chain=_str(doc["cert_chain"]).encode("ascii"),
                cc_state=state,
                uuid=_str(doc.get("uuid", "")),
                arch=_str(doc.get("arch", "")),
            )
        except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as exc:
            raise BundleFormatError(f"gpu evidence: {_problem(exc)}") from None


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    """A worker's CPU + GPU evidence for one request nonce (see the module docstring)."""

    tee: str
    quote: bytes
    event_log: tuple[RuntimeEvent, ...]
    nonce: bytes
    address: str
    x25519_public: bytes
    gpus: tuple[BundleGpu, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "tee": self.tee,
            "quote": base64.b64encode(self.quote).decode(),
            "event_log": events_to_json(self.event_log),
            "nonce": self.nonce.hex(),
            "address": self.address,
            "x25519_public": self.x25519_public.hex(),
            "gpus": [g.to_json() for g in self.gpus],
        }

    @classmethod
    def from_json(cls, doc: Any) -> EvidenceBundle:
        """A bundle from parsed JSON; a document without `gpus` (an older gateway) has none."""
        try:
            gpus = doc.get("gpus", [])
            if not isinstance(gpus, list):
                raise TypeError("gpus must be a list")
            return cls(
                tee=_str(doc["tee"]),
                quote=base64.b64decode(_str(doc["quote"]), validate=True),
                event_log=events_from_json(doc["event_log"]),
                nonce=bytes.fromhex(_str(doc["nonce"])),
                address=_str(doc["address"]),
                x25519_public=bytes.fromhex(_str(doc["x25519_public"])),
                gpus=tuple(BundleGpu.from_json(g) for g in gpus),
            )
        except BundleFormatError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as exc:
            raise BundleFormatError(f"bundle: {_problem(exc)}") from None


def bundle_digest(quote: bytes, gpus: Sequence[BundleGpu]) -> bytes:
    """The bundle's name. `quote`: the quote's own bytes (`Quote.size` of them, as for a quote
    hash). SHA-256(quote) without GPUs; with GPUs, SHA-256 of `BUNDLE_DIGEST_LABEL`, then the quote
    and, per GPU in order, its report, its chain and its CC state (`enabled`, `devtools` as one
    byte each, then `environment` UTF-8), each item preceded by its length (u32 big-endian).
    The event log is not hashed: the quote's RTMRs already commit to it."""
    if not gpus:
        return hashlib.sha256(quote).digest()
    items = [quote]
    for gpu in gpus:
        cc = gpu.cc_state
        flags = bytes([cc.enabled, cc.devtools])
        items += [gpu.report, gpu.cert_chain, flags, cc.environment.encode()]
    framed = b"".join(struct.pack(">I", len(item)) + item for item in items)
    return hashlib.sha256(BUNDLE_DIGEST_LABEL + framed).digest()


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _problem(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
