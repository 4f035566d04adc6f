"""What a relying party accepts, applied to a `VerifiedQuote` or the same facts proven otherwise.

`verify_quote` answers "is this a genuine quote and what is its TCB?"; a `Policy` answers "do
I accept it?". The rules read a `PolicySubject` — report body, TCB status, advisories, trust
anchor, collateral date — so a DCAP verification proven by a zk receipt (`attestation.zk`) is
judged by exactly the rules a direct verification is. Every rule that is set must pass.
Allow-lists are `None` when not pinned; an *empty* allow-list denies every value (it never
means "any"). Relaxations (debug TEEs, a non-Intel trust anchor such as the simulator's, any
MRSERVICETD) are explicit options and every decision lists the ones in effect under
`relaxations`.

GPU rules (`require_gpus`, `gpu_models`, `require_gpu_cc`, ...) judge the GPUs of an
attestation bundle (`attestation.evidence`); the per-GPU rules are in `attestation.gpu.rules`.

Policy files are TOML or JSON with the field names of `Policy`; hex values as strings.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attestation import safejson
from attestation.compose import measured_compose_hash
from attestation.errors import EventLogError, PolicyFormatError
from attestation.eventlog import RuntimeEvent
from attestation.gpu.rules import GpuSubject, gpu_reasons
from attestation.policy_rules import RULES
from attestation.report import SgxReportBody, TdReport10
from attestation.tcb import TcbStatus
from attestation.verify import VerifiedQuote

__all__ = ["GpuSubject", "Policy", "PolicyDecision", "PolicySubject"]

DEFAULT_TCB_STATUSES = frozenset({TcbStatus.UP_TO_DATE, TcbStatus.SW_HARDENING_NEEDED})


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """`accepted` is True only when `reasons` is empty. `relaxations` names every unsafe
    option that was in effect, accepted or not."""

    accepted: bool
    reasons: tuple[str, ...]
    relaxations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicySubject:
    """The verified facts a policy judges. `collateral_issued` is the oldest issue date of the
    collateral used, or None where only its hashes are known (then `max_collateral_age` denies).
    """

    report: SgxReportBody | TdReport10
    tee: str
    tcb_status: TcbStatus
    advisory_ids: tuple[str, ...]
    simulated: bool
    trust_anchor: str
    collateral_issued: datetime | None

    @classmethod
    def of_quote(cls, v: VerifiedQuote) -> PolicySubject:
        return cls(
            report=v.quote.report,
            tee=v.tee,
            tcb_status=v.tcb_status,
            advisory_ids=v.advisory_ids,
            simulated=v.simulated,
            trust_anchor=v.trust_anchor,
            collateral_issued=v.collateral.oldest_issue_date,
        )


@dataclass(frozen=True)
class Policy:
    accepted_tcb_statuses: frozenset[TcbStatus] = DEFAULT_TCB_STATUSES
    rejected_advisories: frozenset[str] = frozenset()
    allow_debug: bool = False
    require_sept_ve_disable: bool = True
    allow_any_mrservicetd: bool = False
    allowed_mrservicetd: frozenset[bytes] | None = None
    allow_simulated: bool = False
    mrtd: frozenset[bytes] | None = None
    rtmr0: frozenset[bytes] | None = None
    rtmr1: frozenset[bytes] | None = None
    rtmr2: frozenset[bytes] | None = None
    rtmr3: frozenset[bytes] | None = None
    mrenclave: frozenset[bytes] | None = None
    mrsigner: frozenset[bytes] | None = None
    isvprodid: frozenset[int] | None = None
    min_isvsvn: int | None = None
    report_data: bytes | None = None
    max_collateral_age: timedelta | None = None
    require_gpus: int = 0
    gpu_models: frozenset[str] | None = None
    require_gpu_cc: bool = True
    allow_gpu_devtools: bool = False
    min_gpu_driver_version: str | None = None
    allow_simulated_gpu: bool = False
    compose_hashes: frozenset[bytes] | None = None

    def evaluate(self, verified: VerifiedQuote, *, now: datetime) -> PolicyDecision:
        """Apply every rule; `now` is needed only for `max_collateral_age`."""
        return self.evaluate_subject(PolicySubject.of_quote(verified), now=now)

    def evaluate_subject(self, subject: PolicySubject, *, now: datetime) -> PolicyDecision:
        """`evaluate` for facts verified by other means than `verify_quote` (a zk receipt)."""
        reasons = [r for rule in RULES if (r := rule(self, subject, now)) is not None]
        return PolicyDecision(not reasons, tuple(reasons), self.relaxations)

    def evaluate_gpu(self, gpu: GpuSubject) -> tuple[str, ...]:
        """The per-GPU rules (simulated root, model, CC mode, driver version): the reasons this
        verified GPU is not accepted, empty when it is."""
        return gpu_reasons(self, gpu)

    def compose_reason(self, events: Sequence[RuntimeEvent] | None) -> str | None:
        """`compose_hashes`: why the dstack app-compose measured in `events` (an event log that
        replays to the quoted RTMR3) is not pinned, if so. On dstack the app is measured by its
        compose hash, not by MRTD or RTMR0-2 (those measure the dstack OS)."""
        if self.compose_hashes is None:
            return None
        if events is None:
            return "compose_hash: pinned by the policy, but there is no event log"
        try:
            measured = measured_compose_hash(events)
        except EventLogError as exc:
            return f"compose_hash: {exc.message}"
        if measured in self.compose_hashes:
            return None
        return f"compose_hash: {measured.hex()} is not in the allow-list"

    def gpu_count_reason(self, attested: int) -> str | None:
        """`require_gpus`: why `attested` GPUs (verified, each accepted) are too few, if so."""
        if attested >= self.require_gpus:
            return None
        return f"gpus: {attested} attested GPU(s), the policy requires {self.require_gpus}"

    @property
    def relaxations(self) -> tuple[str, ...]:
        out = []
        if self.allow_debug:
            out.append("allow_debug: debug TEEs are accepted (their memory is not confidential)")
        if self.allow_simulated:
            out.append("allow_simulated: quotes rooted in a non-Intel trust anchor are accepted")
        if not self.require_sept_ve_disable:
            out.append("require_sept_ve_disable=false: TDs may receive #VE on EPT violations")
        if self.allow_any_mrservicetd:
            out.append("allow_any_mrservicetd: any service TD may be bound to the TD")
        if self.allow_simulated_gpu:
            out.append("allow_simulated_gpu: GPU reports rooted in a non-NVIDIA root are accepted")
        if not self.require_gpu_cc:
            out.append(
                "require_gpu_cc=false: GPUs outside confidential-computing mode are accepted"
            )
        if self.allow_gpu_devtools:
            out.append("allow_gpu_devtools: GPUs in CC developer-tools mode are accepted")
        return tuple(out)

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a TOML (`.toml`) or JSON policy file."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise PolicyFormatError(f"cannot read policy file {p}: {exc.strerror}") from None
        try:
            doc = tomllib.loads(text) if p.suffix == ".toml" else safejson.loads(text)
        except ValueError as exc:
            raise PolicyFormatError(f"policy file {p} is not valid: {exc}") from None
        if not isinstance(doc, dict):
            raise PolicyFormatError(f"policy file {p} must hold a table / object")
        return cls.from_mapping(doc)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> Policy:
        try:
            parsed = _PolicyDocument.model_validate(dict(doc))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise PolicyFormatError(f"invalid policy: {problems}") from None
        return parsed.to_policy()


class _PolicyDocument(BaseModel):
    """The file schema; hex strings are checked for length and decoded in `to_policy`."""

    model_config = ConfigDict(extra="forbid")

    accepted_tcb_statuses: list[TcbStatus] = sorted(DEFAULT_TCB_STATUSES)
    rejected_advisories: list[str] = []
    allow_debug: bool = False
    require_sept_ve_disable: bool = True
    allow_any_mrservicetd: bool = False
    allowed_mrservicetd: list[str] | None = None
    allow_simulated: bool = False
    mrtd: list[str] | None = None
    rtmr0: list[str] | None = None
    rtmr1: list[str] | None = None
    rtmr2: list[str] | None = None
    rtmr3: list[str] | None = None
    mrenclave: list[str] | None = None
    mrsigner: list[str] | None = None
    isvprodid: list[int] | None = None
    min_isvsvn: int | None = Field(default=None, ge=0, le=0xFFFF)
    report_data: str | None = None
    max_collateral_age_seconds: int | None = Field(default=None, gt=0)
    require_gpus: int = Field(default=0, ge=0, le=64)
    gpu_models: list[str] | None = None
    require_gpu_cc: bool = True
    allow_gpu_devtools: bool = False
    min_gpu_driver_version: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)*$")
    allow_simulated_gpu: bool = False
    compose_hashes: list[str] | None = None

    @field_validator("allowed_mrservicetd", "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
    @classmethod
    def _hex48(cls, v: list[str] | None) -> list[str] | None:
        return _check_hex_list(v, 48)

    @field_validator("mrenclave", "mrsigner", "compose_hashes")
    @classmethod
    def _hex32(cls, v: list[str] | None) -> list[str] | None:
        return _check_hex_list(v, 32)

    @field_validator("report_data")
    @classmethod
    def _hex64(cls, v: str | None) -> str | None:
        return None if v is None else _check_hex(v, 64)

    def to_policy(self) -> Policy:
        def hexset(v: list[str] | None) -> frozenset[bytes] | None:
            return None if v is None else frozenset(bytes.fromhex(_strip(x)) for x in v)

        age = self.max_collateral_age_seconds
        return Policy(
            accepted_tcb_statuses=frozenset(self.accepted_tcb_statuses),
            rejected_advisories=frozenset(a.upper() for a in self.rejected_advisories),
            allow_debug=self.allow_debug,
            require_sept_ve_disable=self.require_sept_ve_disable,
            allow_any_mrservicetd=self.allow_any_mrservicetd,
            allowed_mrservicetd=hexset(self.allowed_mrservicetd),
            allow_simulated=self.allow_simulated,
            mrtd=hexset(self.mrtd),
            rtmr0=hexset(self.rtmr0),
            rtmr1=hexset(self.rtmr1),
            rtmr2=hexset(self.rtmr2),
            rtmr3=hexset(self.rtmr3),
            mrenclave=hexset(self.mrenclave),
            mrsigner=hexset(self.mrsigner),
            isvprodid=None if self.isvprodid is None else frozenset(self.isvprodid),
            min_isvsvn=self.min_isvsvn,
            report_data=None
            if self.report_data is None
            else bytes.fromhex(_strip(self.report_data)),
            max_collateral_age=None if age is None else timedelta(seconds=age),
            require_gpus=self.require_gpus,
            gpu_models=None if self.gpu_models is None else frozenset(self.gpu_models),
            require_gpu_cc=self.require_gpu_cc,
            allow_gpu_devtools=self.allow_gpu_devtools,
            min_gpu_driver_version=self.min_gpu_driver_version,
            allow_simulated_gpu=self.allow_simulated_gpu,
            compose_hashes=hexset(self.compose_hashes),
        )


def _strip(value: str) -> str:
    return value.strip().lower().removeprefix("0x")


def _check_hex(value: str, size: int) -> str:
    try:
        raw = bytes.fromhex(_strip(value))
    except ValueError:
        raise ValueError(f"{value!r} is not hex") from None
    if len(raw) != size:
        raise ValueError(f"must be {size} bytes ({2 * size} hex digits), got {len(raw)}")
    return value


def _check_hex_list(values: list[str] | None, size: int) -> list[str] | None:
    if values is not None:
        for v in values:
            _check_hex(v, size)
    return values
