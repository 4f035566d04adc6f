"""One verification request, from bytes to answer: decode, route, verify, check the event log
and the REPORTDATA binding, then sign a token and an EIP-712 verdict when accepted.

The verdict is `explain_quote`'s (the same as the CLI's); the service's own checks (event log
replay, REPORTDATA binding) add reasons and can only turn an accept into a reject.

Event log replay: RTMR3 (the runtime register agents are measured into) is always replayed from
zero and compared; RTMR0-2 are replayed and compared only when the log has events for them
(a dstack / enclava runtime log holds RTMR3 events only; the boot registers are then covered by
the policy's allow-lists). Agent measurements are read from the log only when it replays.

GPU evidence (`attestation.evidence`): each report must answer `gpu_nonce(binding.nonce)` and
chain to NVIDIA's root (or, in dev, a simulated machine's GPU root, `TrustDomain.gpu_anchor`);
the policy's GPU rules always apply (`require_gpus` rejects a request without GPUs). The answer
lists a result per GPU; the token carries the verified GPUs' facts, and the EIP-712 verdict's
`quoteHash` is the bundle's digest (the quote's hash when there are no GPUs).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from attestation import safejson
from attestation.binding import check_worker_report_data, worker_report_data
from attestation.bundle import BundleGpu, bundle_digest
from attestation.errors import BindingError, BundleFormatError, EventLogError
from attestation.eventlog import (
    AgentMeasurement,
    RuntimeEvent,
    agent_events,
    events_from_json,
    replay,
)
from attestation.evidence import GpuResult, gpu_policy_reasons, verify_gpus
from attestation.gpu import gpu_nonce, nvidia_device_root
from attestation.quote import Quote, parse_quote
from attestation.report import TdReport10
from attestation.service.collateral import CollateralProvider, Lookup, Route
from attestation.service.encoding import decode_quote
from attestation.service.errors import (
    InvalidRequestError,
    MalformedRequestError,
    RequestTooLargeError,
)
from attestation.service.keys import ServiceKeys
from attestation.service.models import VerifyRequest
from attestation.service.policies import ChosenPolicy, PolicySet
from attestation.service.settings import ServiceSettings
from attestation.token import (
    TCB_STATUS_CODES,
    Eip712Domain,
    OnchainVerdict,
    TokenIssuer,
    VerdictSigner,
    agent_measurement_id,
)
from attestation.verdict import explain_quote
from attestation.verified import VerifiedQuote

__all__ = ["Expected", "Prepared", "VerificationPipeline"]

_ZERO48 = bytes(48)


@dataclass(frozen=True, slots=True)
class Expected:
    """The REPORTDATA a request expects: given as is, or rebuilt from a worker's keys."""

    report_data: bytes
    address: str | None = None
    x25519_public: bytes = b""
    nonce: bytes = b""

    @property
    def kind(self) -> str:
        return "report_data" if self.address is None else "worker_keys"


@dataclass(frozen=True, slots=True)
class Prepared:
    raw: bytes
    quote: Quote
    route: Route
    policy: ChosenPolicy
    events: tuple[RuntimeEvent, ...] | None
    expected: Expected | None
    agent: str | None
    domain: Eip712Domain | None
    gpus: tuple[BundleGpu, ...] = ()

    @property
    def digest(self) -> bytes:
        return bundle_digest(self.raw[: self.quote.size], self.gpus)


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class VerificationPipeline:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        keys: ServiceKeys,
        provider: CollateralProvider,
        policies: PolicySet,
        version: str,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.policies = policies
        self.version = version
        self.tokens = TokenIssuer(keys.jwt, issuer=settings.issuer)
        self.signer = VerdictSigner(keys.eip712)
        self.default_domain = (
            None
            if settings.eip712_chain_id is None or settings.eip712_verifier is None
            else Eip712Domain(settings.eip712_chain_id, settings.eip712_verifier)
        )
        self._token_ttl = timedelta(seconds=settings.token_ttl_seconds)
        self._verdict_ttl = timedelta(seconds=settings.verdict_ttl_seconds)
        extra = [d.gpu_anchor for d in provider.domains if d.gpu_anchor is not None]
        if extra and not settings.dev:
            raise ValueError("simulated GPU roots need a dev configuration")
        self.gpu_anchors = (nvidia_device_root(), *extra)

    def parse(self, body: bytes) -> VerifyRequest:
        try:
            doc = safejson.loads(body)
        except ValueError as exc:
            raise MalformedRequestError(f"the body is not JSON: {exc}") from None
        try:
            return VerifyRequest.model_validate(doc)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise InvalidRequestError(f"invalid request: {problems}") from None

    def prepare(self, request: VerifyRequest) -> Prepared:
        policy = self.policies.choose(request.policy)
        raw = decode_quote(request.quote, self.settings.max_quote_bytes)
        quote = parse_quote(raw)
        route = self.provider.route(quote)
        events = None
        if request.event_log is not None:
            if len(request.event_log) > self.settings.max_event_log_entries:
                raise RequestTooLargeError(
                    f"event_log: {len(request.event_log)} entries, more than "
                    f"{self.settings.max_event_log_entries}"
                )
            try:
                events = events_from_json([e.model_dump() for e in request.event_log])
            except EventLogError as exc:
                raise InvalidRequestError(exc.message, code="malformed_event_log") from None
        expected = None
        if request.report_data is not None:
            expected = Expected(_hex(request.report_data))
        elif request.binding is not None:
            b = request.binding
            address, x25519, nonce = _hex(b.address), _hex(b.x25519_public), _hex(b.nonce)
            report_data = worker_report_data(address, x25519, nonce)
            expected = Expected(report_data, b.address, x25519, nonce)
        domain = self.default_domain
        if request.verdict_domain is not None:
            d = request.verdict_domain
            domain = Eip712Domain(d.chain_id, d.verifying_contract)
        try:
            gpus = tuple(BundleGpu.from_json(g.model_dump()) for g in request.gpu_evidence or ())
        except BundleFormatError as exc:
            raise InvalidRequestError(exc.message, code="malformed_gpu_evidence") from None
        return Prepared(raw, quote, route, policy, events, expected, request.agent, domain, gpus)

    def answer(self, p: Prepared, found: Lookup, now: datetime) -> tuple[str, dict[str, Any]]:
        """The outcome (accepted / rejected / unverified) and the response body."""
        assert found.collateral is not None and found.next_update is not None
        verdict = explain_quote(
            p.raw, found.collateral, now=now, policy=p.policy.policy, verifier=p.route.verifier
        )
        if verdict.error is not None and verdict.malformed:
            raise verdict.error
        body = verdict.to_dict()
        vq = verdict.verified_quote
        reasons: list[str] = []
        agents: tuple[AgentMeasurement, ...] = ()
        event_report = binding_report = None
        if vq is not None and p.events is not None:
            event_report, agents = _check_events(p.events, vq, reasons)
        if vq is not None and (why := p.policy.policy.compose_reason(p.events)) is not None:
            reasons.append(why)
        if vq is not None and p.expected is not None:
            binding_report = _check_binding(p.expected, vq, reasons)
        gpus = self._verify_gpus(p, now)
        reasons.extend(gpu_policy_reasons(gpus, p.policy.policy))
        accepted = verdict.accepted and not reasons
        body["accepted"] = accepted
        body["reasons"].extend(reasons)
        body["policy"] = p.policy.to_dict()
        body["collateral_source"] = {
            "upstream": self.provider.domains[p.route.domain].upstream.label,
            "state": found.state,
            "next_update": found.next_update.isoformat(),
        }
        body["event_log"] = event_report
        body["agents"] = [_agent_dict(a) for a in agents]
        body["binding"] = binding_report
        body["gpus"] = [g.to_dict() for g in gpus]
        body["bundle_sha256"] = p.digest.hex()
        body["verifier_version"] = self.version
        body["token"] = body["signed_verdict"] = None
        body["signed_verdict_omitted"] = "the verdict is not accepted"
        if accepted:
            assert vq is not None
            expires = min(now + self._token_ttl, found.next_update)
            body["token"] = self.tokens.issue(
                self._claims(body, vq, p, gpus), now=now, expires_at=expires
            )
            signed, omitted = self._signed_verdict(p, vq, agents, now, found.next_update)
            body["signed_verdict"], body["signed_verdict_omitted"] = signed, omitted
        outcome = "accepted" if accepted else "rejected" if verdict.verified else "unverified"
        return outcome, body

    def _verify_gpus(self, p: Prepared, now: datetime) -> tuple[GpuResult, ...]:
        if not p.gpus:
            return ()
        assert p.expected is not None  # the request model requires a binding with GPUs
        return verify_gpus(
            p.gpus,
            spdm_nonce=gpu_nonce(p.expected.nonce),
            now=now,
            trust_anchors=self.gpu_anchors,
            policy=p.policy.policy,
        )

    def _claims(
        self, body: dict[str, Any], vq: VerifiedQuote, p: Prepared, gpus: tuple[GpuResult, ...]
    ) -> dict[str, Any]:
        worker = p.expected.address if p.expected is not None else None
        return {
            "sub": worker or vq.quote_sha256,
            "jti": secrets.token_hex(16),
            "tee": body["tee"],
            "tcb_status": body["tcb_status"],
            "advisory_ids": body["advisory_ids"],
            "measurements": body["measurements"],
            "report_data": vq.quote.report.report_data.hex(),
            "report_data_binding": None if p.expected is None else p.expected.kind,
            "worker": worker,
            "agents": body["agents"],
            "event_log_replayed": p.events is not None,
            "quote_sha256": vq.quote_sha256,
            "bundle_sha256": body["bundle_sha256"],
            "gpus": [g.facts() for g in gpus],
            "fmspc": vq.fmspc,
            "trust_anchor": {"label": vq.trust_anchor, "sha256": vq.trust_anchor_sha256},
            "policy": p.policy.label,
            "relaxations": body["relaxations"],
            "collateral": {
                "tcb_evaluation_data_number": vq.collateral.tcb_evaluation_data_number,
                "next_update": body["collateral_source"]["next_update"],
            },
            "verifier_version": self.version,
        }

    def _signed_verdict(
        self,
        p: Prepared,
        vq: VerifiedQuote,
        agents: tuple[AgentMeasurement, ...],
        now: datetime,
        next_update: datetime,
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The EIP-712 verdict, or why there is none."""
        if p.policy.name is None:
            return None, "inline policies get no EIP-712 verdict: name a policy of this service"
        if p.expected is None or p.expected.address is None:
            return None, "an EIP-712 verdict needs the worker's keys (binding) bound in REPORTDATA"
        if p.domain is None:
            return None, "no verdict_domain given and no default EIP-712 domain configured"
        agent, problem = _pick_agent(agents, p.agent, p.events is not None)
        if agent is None:
            return None, problem
        status = str(vq.tcb_status)
        if status not in TCB_STATUS_CODES:
            return None, f"TCB status {status} is never signed"
        expires_at = int(min(now + self._verdict_ttl, next_update).timestamp())
        if expires_at <= int(now.timestamp()):
            return None, "the collateral expires within the second: no verdict"
        verdict = OnchainVerdict(
            worker=p.expected.address,
            measurement=agent_measurement_id(agent.bundle_digest),
            tcb_status=status,
            quote_hash=p.digest,
            expires_at=expires_at,
        )
        return self.signer.sign(verdict, p.domain).to_dict(), None


def _pick_agent(
    agents: tuple[AgentMeasurement, ...], name: str | None, has_log: bool
) -> tuple[AgentMeasurement | None, str]:
    if not has_log:
        return None, "an EIP-712 verdict needs an event log with an enclava.agent event"
    candidates = agents if name is None else tuple(a for a in agents if a.name == name)
    digests = {a.bundle_digest for a in candidates}
    if len(digests) == 1:
        return candidates[-1], ""
    if not candidates:
        which = "no agent" if name is None else f"no agent named {name!r}"
        return None, f"the event log measures {which} (enclava.agent events)"
    return None, "the event log measures several agents: name one with `agent`"


def _agent_dict(agent: AgentMeasurement) -> dict[str, str]:
    return {
        "name": agent.name,
        "version": agent.version,
        "digest": agent.bundle_digest.hex(),
        "measurement": "0x" + agent_measurement_id(agent.bundle_digest).hex(),
    }


def _check_events(
    events: tuple[RuntimeEvent, ...], vq: VerifiedQuote, reasons: list[str]
) -> tuple[dict[str, Any], tuple[AgentMeasurement, ...]]:
    report = vq.quote.report
    replayed: dict[str, str | None] = {f"rtmr{i}": None for i in range(4)}
    out: dict[str, Any] = {"events": len(events), "replayed": replayed, "matches": False}
    if not isinstance(report, TdReport10):
        out["problem"] = "an SGX quote has no RTMRs to replay an event log against"
        reasons.append(f"event_log: {out['problem']}")
        return out, ()
    quoted = report.rtmrs
    covered = {e.imr for e in events} | {3}
    initial = [_ZERO48 if i in covered else quoted[i] for i in range(4)]
    problem = None
    agents: tuple[AgentMeasurement, ...] = ()
    try:
        values = replay(events, initial)
        for i in sorted(covered):
            replayed[f"rtmr{i}"] = values[i].hex()
        mismatch = next((i for i in sorted(covered) if values[i] != quoted[i]), None)
        if mismatch is not None:
            problem = (
                f"RTMR{mismatch}: the event log replays to {values[mismatch].hex()[:16]}..., "
                f"the quote has {quoted[mismatch].hex()[:16]}..."
            )
        else:
            agents = agent_events(events)
    except EventLogError as exc:
        problem = exc.message
    out["matches"] = problem is None
    out["problem"] = problem
    if problem is not None:
        reasons.append(f"event_log: {problem}")
    return out, agents


def _check_binding(expected: Expected, vq: VerifiedQuote, reasons: list[str]) -> dict[str, Any]:
    actual = vq.quote.report.report_data
    if expected.address is not None:
        try:
            check_worker_report_data(
                actual, _hex(expected.address), expected.x25519_public, expected.nonce
            )
            matches = True
        except BindingError as exc:
            reasons.append(exc.message)
            matches = False
    else:
        matches = hmac.compare_digest(actual, expected.report_data)
        if not matches:
            reasons.append("report_data: REPORTDATA is not the expected value")
    return {
        "kind": expected.kind,
        "expected": expected.report_data.hex(),
        "matches": matches,
        "address": expected.address,
    }
