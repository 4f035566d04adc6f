"""An explained verdict: verification and policy in one serialisable record.

`explain_quote` never raises for bad evidence: a malformed quote, a failed check or a policy
rejection all become a `Verdict` that says which check failed and why. The CLI renders it, and
the attestation service returns its `to_dict()` as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attestation.collateral import Collateral
from attestation.errors import AttestationError, VerificationError
from attestation.policy import Policy, PolicyDecision
from attestation.quote import parse_quote
from attestation.verified import CHECKS, VerifiedQuote, checks_for
from attestation.verify import QuoteVerifier

__all__ = ["CheckOutcome", "Verdict", "explain_quote"]


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    name: str
    description: str
    outcome: str  # "pass" | "fail" | "not run" | "n/a"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """`verified`: every DCAP check passed. `accepted`: verified and the policy accepted."""

    verified: bool
    accepted: bool
    checks: tuple[CheckOutcome, ...]
    reasons: tuple[str, ...]
    verified_quote: VerifiedQuote | None = None
    decision: PolicyDecision | None = None
    error: AttestationError | None = None

    @property
    def malformed(self) -> bool:
        """The input could not be parsed at all (as opposed to a failed check)."""
        return self.error is not None and not isinstance(self.error, VerificationError)

    def to_dict(self) -> dict[str, Any]:
        vq = self.verified_quote
        out: dict[str, Any] = {
            "verified": self.verified,
            "accepted": self.accepted,
            "tcb_status": str(vq.tcb_status) if vq else None,
            "advisory_ids": list(vq.advisory_ids) if vq else [],
            "tee": ("simulated" if vq.simulated else vq.tee) if vq else None,
            "quote_version": vq.quote.header.version if vq else None,
            "fmspc": vq.fmspc if vq else None,
            "measurements": vq.measurements if vq else {},
            "reasons": list(self.reasons),
            "checks": [
                {"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in self.checks
            ],
            "relaxations": list(self.decision.relaxations) if self.decision else [],
        }
        if vq is not None:
            out["quote_sha256"] = vq.quote_sha256
            out["trust_anchor"] = {
                "label": vq.trust_anchor,
                "sha256": vq.trust_anchor_sha256,
                "simulated": vq.simulated,
            }
            summary = vq.collateral
            out["collateral"] = {
                "digest": summary.digest,
                "tcb_evaluation_data_number": summary.tcb_evaluation_data_number,
                "tcb_info_issue_date": summary.tcb_info_issue_date.isoformat(),
                "tcb_info_next_update": summary.tcb_info_next_update.isoformat(),
                "qe_identity_issue_date": summary.qe_identity_issue_date.isoformat(),
                "qe_identity_next_update": summary.qe_identity_next_update.isoformat(),
            }
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


def explain_quote(
    quote: bytes,
    collateral: Collateral,
    *,
    now: datetime,
    policy: Policy,
    verifier: QuoteVerifier,
) -> Verdict:
    """Verify `quote`, apply `policy`, and explain every check. Never raises for bad evidence."""
    try:
        verified = verifier.verify(quote, collateral, now=now)
    except VerificationError as exc:
        applicable = checks_for(parse_quote(quote).tee)  # it parsed, or this would not be raised
        return Verdict(False, False, _outcomes(applicable, failed=exc), (exc.message,), error=exc)
    except AttestationError as exc:
        return Verdict(False, False, _outcomes((), failed=None), (exc.message,), error=exc)
    decision = policy.evaluate(verified, now=now)
    checks = _outcomes(verified.checks, failed=None, passed_all=True)
    return Verdict(True, decision.accepted, checks, decision.reasons, verified, decision)


def _outcomes(
    applicable: tuple[str, ...], failed: VerificationError | None, passed_all: bool = False
) -> tuple[CheckOutcome, ...]:
    """Checks run in `CHECKS` order, so those before the failed one passed."""
    out = []
    state = "pass" if passed_all or failed is not None else "not run"
    for name, description in CHECKS:
        if failed is not None and name == failed.check:
            out.append(CheckOutcome(name, description, "fail", failed.reason))
            state = "not run"
        elif name not in applicable and state == "pass":
            out.append(CheckOutcome(name, description, "n/a"))
        else:
            out.append(CheckOutcome(name, description, state))
    return tuple(out)
