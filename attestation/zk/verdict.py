"""A DCAP verification proven by a RISC Zero receipt, judged like a direct quote verification.

`verify_dcap_receipt` checks the receipt (image ID pinned by the caller, selector, Groth16
proof) and what the proof cannot: that the guest chained the quote to the root the caller
trusts (the journal names the root by keccak-256 of its TBS), that the proven TCB status is not
Revoked, and that the verification did not happen after `now`.
`explain_receipt` then applies the same `Policy` as a direct verification and explains every
check; like `explain_quote` it never raises for bad evidence.

What the receipt does not prove: that the collateral (named by hashes only) was current. Its
issue date is unknown, so a policy with `max_collateral_age` rejects; the verification time is
reported so the relying party can judge it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_hash.auto import keccak

from attestation.errors import AttestationError, VerificationError
from attestation.pki import TrustAnchor
from attestation.policy import Policy, PolicyDecision, PolicySubject
from attestation.tcb import TcbStatus
from attestation.verdict import CheckOutcome
from attestation.zk.errors import JournalFormatError, ReceiptVerificationError
from attestation.zk.groth16 import VerifiedReceipt, check_receipt_header
from attestation.zk.journal import DcapJournal, decode_dcap_journal
from attestation.zk.native import PurePythonVerifier, ReceiptVerifier
from attestation.zk.params import PARAMETER_SETS, VerifierParameters
from attestation.zk.receipt import Receipt

__all__ = [
    "ZK_CHECKS",
    "VerifiedDcapReceipt",
    "ZkVerdict",
    "explain_receipt",
    "verify_dcap_receipt",
]

ZK_CHECKS: tuple[tuple[str, str], ...] = (
    ("receipt.image_id", "the receipt is for the pinned guest program (image ID)"),
    ("seal.selector", "the seal's selector names an accepted verifier parameter set"),
    ("journal.format", "the journal is a DCAP verified output (Automata's layout)"),
    ("journal.root_ca", "the guest chained the quote to the pinned root CA"),
    ("journal.tcb_status", "the TCB status in the journal is not Revoked"),
    ("journal.time", "the DCAP verification time is not after now"),
    ("receipt.groth16", "Groth16 proof over BN254 verifies for the claim (image ID, journal)"),
)


@dataclass(frozen=True, slots=True)
class VerifiedDcapReceipt:
    """A verified receipt whose journal is a DCAP verification rooted in `trust_anchor`."""

    receipt: VerifiedReceipt
    journal: DcapJournal
    trust_anchor: str
    simulated: bool

    def policy_subject(self) -> PolicySubject:
        j = self.journal
        return PolicySubject(
            report=j.report,
            tee=j.tee,
            tcb_status=j.tcb_status,
            advisory_ids=j.advisory_ids,
            simulated=self.simulated,
            trust_anchor=self.trust_anchor,
            collateral_issued=None,
        )


def verify_dcap_receipt(
    receipt: Receipt,
    *,
    image_id: bytes,
    now: datetime,
    trust_anchor: TrustAnchor,
    parameter_sets: tuple[VerifierParameters, ...] = PARAMETER_SETS,
    verifier: ReceiptVerifier | None = None,
) -> VerifiedDcapReceipt:
    """Run `ZK_CHECKS` in order, the proof last; raises the first failure (a `VerificationError`
    naming the check) or a `JournalFormatError`. Until the proof passes the journal is only a
    claim: the checks before it reject cheaply, they prove nothing. `verifier` checks the proof:
    the pure-Python pairing (about half a second) unless the native library is given
    (`attestation.zk.native.choose_verifier`)."""
    check_receipt_header(receipt, image_id=image_id, parameter_sets=parameter_sets)
    journal = decode_dcap_journal(receipt.journal)
    root_hash = keccak(trust_anchor.certificate.tbs_certificate_bytes)
    if journal.collateral.root_ca != root_hash:
        raise ReceiptVerificationError(
            "journal.root_ca",
            f"the guest verified against root {journal.collateral.root_ca.hex()}, "
            f"not the pinned {trust_anchor.label} ({root_hash.hex()})",
        )
    if journal.tcb_status is TcbStatus.REVOKED:
        raise ReceiptVerificationError("journal.tcb_status", "the platform's TCB is Revoked")
    if journal.verified_at > now:
        raise ReceiptVerificationError(
            "journal.time", f"verified at {journal.verified_at.isoformat()}, after now"
        )
    proof_checker = verifier or PurePythonVerifier(parameter_sets)
    verified = proof_checker.verify(receipt, image_id=image_id)
    return VerifiedDcapReceipt(verified, journal, trust_anchor.label, not trust_anchor.is_intel)


@dataclass(frozen=True, slots=True)
class ZkVerdict:
    """`verified`: every zk check passed. `accepted`: verified and the policy accepted."""

    verified: bool
    accepted: bool
    checks: tuple[CheckOutcome, ...]
    reasons: tuple[str, ...]
    image_id: bytes
    verified_dcap: VerifiedDcapReceipt | None = None
    decision: PolicyDecision | None = None
    error: AttestationError | None = None

    @property
    def source(self) -> str:
        return f"zk receipt (image id {self.image_id.hex()})"

    @property
    def malformed(self) -> bool:
        """The receipt or journal could not be read (as opposed to a failed check)."""
        return self.error is not None and not isinstance(self.error, VerificationError)

    def to_dict(self) -> dict[str, Any]:
        """The keys of `Verdict.to_dict`, plus `source`, `image_id` and the receipt's facts."""
        vd = self.verified_dcap
        j = vd.journal if vd else None
        out: dict[str, Any] = {
            "source": self.source,
            "image_id": self.image_id.hex(),
            "verified": self.verified,
            "accepted": self.accepted,
            "tcb_status": str(j.tcb_status) if j else None,
            "advisory_ids": list(j.advisory_ids) if j else [],
            "tee": (("simulated" if vd.simulated else j.tee) if vd and j else None),
            "quote_version": j.quote_version if j else None,
            "fmspc": j.fmspc if j else None,
            "measurements": j.measurements if j else {},
            "reasons": list(self.reasons),
            "checks": [
                {"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in self.checks
            ],
            "relaxations": list(self.decision.relaxations) if self.decision else [],
        }
        if vd is not None and j is not None:
            out["trust_anchor"] = {"label": vd.trust_anchor, "simulated": vd.simulated}
            out["receipt"] = {
                "claim_digest": vd.receipt.claim_digest.hex(),
                "journal_sha256": vd.receipt.receipt.journal_digest.hex(),
                "selector": vd.receipt.parameters.selector.hex(),
                "verifier_parameters": vd.receipt.parameters.version,
            }
            out["verified_at"] = j.verified_at.isoformat()
            out["collateral_hashes"] = j.collateral.to_dict()
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


def explain_receipt(
    receipt: Receipt,
    *,
    image_id: bytes,
    now: datetime,
    policy: Policy,
    trust_anchor: TrustAnchor,
    parameter_sets: tuple[VerifierParameters, ...] = PARAMETER_SETS,
    verifier: ReceiptVerifier | None = None,
) -> ZkVerdict:
    """Verify `receipt`, apply `policy`, and explain every check. Never raises for bad evidence."""
    try:
        vd = verify_dcap_receipt(
            receipt,
            image_id=image_id,
            now=now,
            trust_anchor=trust_anchor,
            parameter_sets=parameter_sets,
            verifier=verifier,
        )
    except VerificationError as exc:
        checks = _outcomes(exc.check, exc.reason)
        return ZkVerdict(False, False, checks, (exc.message,), image_id, error=exc)
    except JournalFormatError as exc:
        checks = _outcomes("journal.format", exc.message)
        return ZkVerdict(False, False, checks, (exc.message,), image_id, error=exc)
    decision = policy.evaluate_subject(vd.policy_subject(), now=now)
    checks = _outcomes(None, "")
    return ZkVerdict(True, decision.accepted, checks, decision.reasons, image_id, vd, decision)


def _outcomes(failed: str | None, detail: str) -> tuple[CheckOutcome, ...]:
    """Checks run in `ZK_CHECKS` order, so those before the failed one passed."""
    out = []
    state = "pass"
    for name, description in ZK_CHECKS:
        if name == failed:
            out.append(CheckOutcome(name, description, "fail", detail))
            state = "not run"
        else:
            out.append(CheckOutcome(name, description, state))
    return tuple(out)
