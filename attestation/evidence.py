"""Combined CPU + GPU evidence verified as a whole: one attestation bundle
(`attestation.bundle`), bound to one request nonce, with a result per device and one decision.
Pure: the clock, the collateral and the trust anchors are passed in.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from attestation.binding import check_worker_report_data
from attestation.bundle import BundleGpu, EvidenceBundle, bundle_digest
from attestation.collateral import Collateral
from attestation.errors import BindingError, EventLogError
from attestation.eventlog import (
    AgentMeasurement,
    RuntimeEvent,
    agent_events,
    check_rtmrs,
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
from attestation.report import TdReport10
from attestation.verify import VerifiedQuote, verify_quote

__all__ = [
    "GpuResult",
    "VerifiedBundle",
    "gpu_anchor_for",
    "gpu_policy_reasons",
    "verify_bundle",
    "verify_gpus",
]

_ZERO48 = bytes(48)


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
