"""Combined CPU + GPU evidence: one attestation bundle, bound to one request nonce, verified as a
whole, with a result per device and one decision. Pure: the clock, the collateral and the trust
anchors are passed in.

A verifier picks a fresh 32-byte request nonce; the TD's quote and every GPU's report answer it:

    REPORTDATA      = SHA-512("enclava/worker/v1" || address || X25519 key || nonce)   (binding)
    GPU SPDM nonce  = SHA-256("enclava/gpu/v1" || nonce)                      (gpu.gpu_nonce)

so no part can be replayed into another bundle: a GPU report over another nonce fails that
GPU's `report.nonce` check and rejects the bundle. Every GPU in a bundle must verify and pass
the policy's per-GPU rules; `Policy.require_gpus` sets how many there must be.

Each GPU's CC state travels beside its report (NVML's answer inside the TD): the signed SPDM
report has no CC bit, so the state is trusted exactly as far as the attested TD reporting it,
and only where the bundle reaches the verifier from that TD intact (TLS to the TD, or the
worker's own registration call); it is not bound into the quote.

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
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from attestation.binding import check_worker_report_data
from attestation.collateral import Collateral
from attestation.errors import AttestationError, BindingError, EventLogError
from attestation.eventlog import (
    AgentMeasurement,
    RuntimeEvent,
    agent_events,
    check_rtmrs,
    events_from_json,
    events_to_json,
)
from attestation.gpu import (
    GpuError,
    GpuVerificationError,
    RimSet,
    VerifiedGpu,
    gpu_nonce,
    verify_gpu_report,
)
from attestation.gpu.rules import GpuSubject
from attestation.pki import TrustAnchor
from attestation.policy import Policy, PolicyDecision
from attestation.quote import TdReport10
from attestation.verify import VerifiedQuote, verify_quote

__all__ = [
    "BUNDLE_DIGEST_LABEL",
    "BundleFormatError",
    "BundleGpu",
    "EvidenceBundle",
    "GpuCcState",
    "GpuResult",
    "VerifiedBundle",
    "bundle_digest",
    "gpu_anchor_for",
    "gpu_policy_reasons",
    "verify_bundle",
    "verify_gpus",
]

BUNDLE_DIGEST_LABEL = b"enclava/bundle/v1"
_ZERO48 = bytes(48)


class BundleFormatError(AttestationError, ValueError):
    """A bundle (or one GPU's part of it) is not in the JSON layout of the module docstring."""

    code = "malformed_bundle"


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


@dataclass(frozen=True, slots=True)
class GpuResult:
    """One GPU's outcome: `verified` when every check passed (else `error` says which failed),
    and `reasons`: the verification failure or the per-GPU policy rules it fails."""

    index: int
    evidence: BundleGpu
    verified: VerifiedGpu | None
    error: GpuError | None
    reasons: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return self.verified is not None and not self.reasons

    @property
    def check(self) -> str | None:
        """The failed check (`attestation.gpu.GPU_CHECKS`), None when it verified."""
        if isinstance(self.error, GpuVerificationError):
            return self.error.check
        return None if self.error is None else "report.format"

    def facts(self) -> dict[str, Any]:
        """What a verified GPU attests (for tokens and reports); `{}` when it did not verify."""
        v = self.verified
        if v is None:
            return {}
        cc = self.evidence.cc_state
        return {
            "model": v.model,
            "arch": v.arch,
            "fwid": v.fwid.hex(),
            "driver_version": v.driver_version,
            "vbios_version": v.vbios_version,
            "cc_enabled": cc.enabled,
            "cc_devtools": cc.devtools,
            "cc_environment": cc.environment,
            "cc_feature": v.cc_feature,
            "simulated": v.simulated,
            "trust_anchor": {"label": v.trust_anchor, "sha256": v.trust_anchor_sha256},
        }

    def to_dict(self) -> dict[str, Any]:
        error = None if self.error is None else {**self.error.to_dict(), "check": self.check}
        return {
            "index": self.index,
            "uuid": self.evidence.uuid,
            "verified": self.verified is not None,
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "error": error,
            **self.facts(),
        }


def gpu_anchor_for(cert_chain: bytes, anchors: Sequence[TrustAnchor]) -> TrustAnchor:
    """The anchor a GPU chain is verified to: the one that is its last certificate (NVML's
    chains end with the root), else the first. This only routes: the chain is then verified."""
    if not anchors:
        raise ValueError("no GPU trust anchor given")
    try:
        last = x509.load_pem_x509_certificates(cert_chain)[-1]
    except (ValueError, IndexError):
        return anchors[0]
    fingerprint = last.fingerprint(hashes.SHA256()).hex()
    return next((a for a in anchors if a.fingerprint == fingerprint), anchors[0])


def verify_gpus(
    gpus: Sequence[BundleGpu],
    *,
    spdm_nonce: bytes,
    now: datetime,
    trust_anchors: Sequence[TrustAnchor],
    policy: Policy,
    rims: RimSet | None = None,
) -> tuple[GpuResult, ...]:
    """Verify each GPU's report against the 32-byte `spdm_nonce` (`gpu_nonce` of the request
    nonce for Enclava bundles) and apply the per-GPU policy rules; never raises for bad
    evidence (a failure is that GPU's result)."""
    results = []
    for index, gpu in enumerate(gpus):
        anchor = gpu_anchor_for(gpu.cert_chain, trust_anchors)
        try:
            verified = verify_gpu_report(
                gpu.report,
                gpu.cert_chain,
                nonce=spdm_nonce,
                now=now,
                trust_anchor=anchor,
                rims=rims,
            )
        except GpuError as exc:
            results.append(GpuResult(index, gpu, None, exc, (exc.message,)))
            continue
        cc = gpu.cc_state
        subject = GpuSubject.of(verified, cc_enabled=cc.enabled, cc_devtools=cc.devtools)
        results.append(GpuResult(index, gpu, verified, None, policy.evaluate_gpu(subject)))
    return tuple(results)


def gpu_policy_reasons(results: Sequence[GpuResult], policy: Policy) -> tuple[str, ...]:
    """The bundle-level GPU reasons: each GPU's own (prefixed `gpu[i]: `), then too few GPUs."""
    reasons = [f"gpu[{r.index}]: {reason}" for r in results for reason in r.reasons]
    count = policy.gpu_count_reason(sum(r.accepted for r in results))
    return (*reasons, *(() if count is None else (count,)))


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle whose quote verified: the CPU result, one result per GPU, the agents its event
    log measures (when it replays) and the one decision (policy, binding, event log, GPUs)."""

    bundle: EvidenceBundle
    cpu: VerifiedQuote
    gpus: tuple[GpuResult, ...]
    agents: tuple[AgentMeasurement, ...]
    decision: PolicyDecision

    @property
    def accepted(self) -> bool:
        return self.decision.accepted

    @property
    def digest(self) -> bytes:
        return bundle_digest(self.bundle.quote[: self.cpu.quote.size], self.bundle.gpus)

    def to_dict(self) -> dict[str, Any]:
        cpu = self.cpu
        return {
            "accepted": self.accepted,
            "reasons": list(self.decision.reasons),
            "relaxations": list(self.decision.relaxations),
            "bundle_sha256": self.digest.hex(),
            "cpu": {
                "tee": cpu.tee,
                "tcb_status": str(cpu.tcb_status),
                "quote_sha256": cpu.quote_sha256,
                "simulated": cpu.simulated,
                "trust_anchor": {"label": cpu.trust_anchor, "sha256": cpu.trust_anchor_sha256},
                "measurements": cpu.measurements,
            },
            "gpus": [g.to_dict() for g in self.gpus],
            "agents": [
                {"name": a.name, "version": a.version, "digest": a.bundle_digest.hex()}
                for a in self.agents
            ],
        }


def verify_bundle(
    bundle: EvidenceBundle,
    *,
    nonce: bytes,
    collateral: Collateral,
    now: datetime,
    cpu_trust_anchor: TrustAnchor,
    gpu_trust_anchors: Sequence[TrustAnchor],
    policy: Policy,
    rims: RimSet | None = None,
) -> VerifiedBundle:
    """Verify `bundle` for the verifier's 32-byte request `nonce`: the quote (a failed DCAP
    check raises its `VerificationError`: without a genuine TD nothing else counts), then the
    policy, REPORTDATA binding, event log replay and every GPU, each adding reasons to the one
    decision. GPU chains are verified to the anchor `gpu_anchor_for` picks among
    `gpu_trust_anchors` (`nvidia_device_root()` in production)."""
    cpu = verify_quote(bundle.quote, collateral, now=now, trust_anchor=cpu_trust_anchor)
    reasons = list(policy.evaluate(cpu, now=now).reasons)
    if bundle.nonce != nonce:
        reasons.append("nonce: the bundle answers another nonce")
    try:
        address = bytes.fromhex(bundle.address.removeprefix("0x"))
        check_worker_report_data(cpu.quote.report.report_data, address, bundle.x25519_public, nonce)
    except BindingError as exc:
        reasons.append(f"binding: {exc.reason}")
    except ValueError as exc:
        reasons.append(f"binding: {exc}")
    agents, problem = _replay(bundle.event_log, cpu)
    if problem is not None:
        reasons.append(f"event_log: {problem}")
    if (why := policy.compose_reason(bundle.event_log)) is not None:
        reasons.append(why)
    gpus = verify_gpus(
        bundle.gpus,
        spdm_nonce=gpu_nonce(nonce),
        now=now,
        trust_anchors=gpu_trust_anchors,
        policy=policy,
        rims=rims,
    )
    reasons += gpu_policy_reasons(gpus, policy)
    decision = PolicyDecision(not reasons, tuple(reasons), policy.relaxations)
    return VerifiedBundle(bundle, cpu, gpus, agents, decision)


def _replay(
    events: tuple[RuntimeEvent, ...], cpu: VerifiedQuote
) -> tuple[tuple[AgentMeasurement, ...], str | None]:
    """RTMR3 replayed from zero, RTMR0-2 only where the log has events for them (as the
    attestation service does); the measured agents when it replays, else why not."""
    report = cpu.quote.report
    if not isinstance(report, TdReport10):
        return (), "an SGX quote has no RTMRs to replay an event log against"
    covered = {e.imr for e in events} | {3}
    initial = [_ZERO48 if i in covered else report.rtmrs[i] for i in range(4)]
    try:
        check_rtmrs(events, report.rtmrs, initial=initial)
        return agent_events(events), None
    except EventLogError as exc:
        return (), exc.message


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
