"""Checking a gateway's evidence and answers: pure (no I/O, no clock), bytes and parsed JSON in,
verified values out (`enclave.gateway_client` does the HTTP). The protocol is
`enclave.gateway.protocol`.

`verify_attestation` trusts only the caller's trust anchor, policy, nonce and pinned
measurement: the quote must verify and pass the policy, REPORTDATA must bind the served address,
X25519 key and this nonce, the event log must replay to the quoted RTMR3 (from zero), and the
pinned measurement must be among the measured agents, and every GPU report must answer
`gpu_nonce(nonce)`, chain to a GPU trust anchor and pass the policy's GPU rules
(`attestation.evidence.verify_gpus`; the policy's `require_gpus` sets how many there must be).
`verify_answer` accepts an invoke answer
only if its hashes are those of the bytes sent and received, its signature recovers to the
attested address, and it names the attested agent (measurement and programs); an encrypted
answer must open with the caller's key for the call's context. Every failure is a
`GatewayVerificationError` (`gateway_untrusted`) naming the check.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_utils.address import to_checksum_address

from agents.canonical import dump_canonical
from attestation import Collateral, Policy, PolicyDecision, TrustAnchor, VerifiedQuote, safejson
from attestation.binding import check_worker_report_data
from attestation.bundle import BundleGpu, EvidenceBundle
from attestation.errors import AttestationError
from attestation.eventlog import RuntimeEvent, agent_events, check_rtmrs
from attestation.evidence import GpuResult, gpu_policy_reasons, verify_gpus
from attestation.gpu import gpu_nonce, nvidia_device_root
from attestation.report import TdReport10
from attestation.verify import verify_quote
from enclave.envelope import EnvelopeContext, open_response
from enclave.errors import EnclaveError, EnvelopeError
from enclave.gateway.protocol import (
    PROGRAMS_EVENT,
    recover_signer,
    sha256_hex,
    signed_document,
    signed_text,
)

__all__ = [
    "Attestation",
    "AttestedAgent",
    "GatewayClientError",
    "GatewayResponseError",
    "GatewayVerificationError",
    "InvokeResult",
    "VerifiedGateway",
    "verify_answer",
    "verify_attestation",
    "verify_exchange",
]

_ZERO48 = bytes(48)


class GatewayClientError(EnclaveError):
    """The gateway could not be reached or answered outside the protocol."""

    code = "gateway_error"


class GatewayResponseError(GatewayClientError):
    """The gateway answered with an error; `code` and `status` are its own."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"gateway answered {status} {code}: {message}")
        self.status = status
        self.code = code


class GatewayVerificationError(GatewayClientError):
    """Evidence or an answer failed a check (`check` names it): do not trust this gateway."""

    code = "gateway_untrusted"

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.check = check


@dataclass(frozen=True, slots=True)
class Attestation:
    """A gateway's attestation answer, parsed (not yet verified): the evidence bundle
    (`attestation.bundle`: quote, event log, keys, GPU reports), the chain id its envelopes are
    bound to and the agents it advertises."""

    bundle: EvidenceBundle
    chain_id: int
    advertised: tuple[tuple[str, str], ...]  # (name, measurement hex) as the gateway lists them

    @property
    def tee(self) -> str:
        return self.bundle.tee

    @property
    def quote(self) -> bytes:
        return self.bundle.quote

    @property
    def event_log(self) -> tuple[RuntimeEvent, ...]:
        return self.bundle.event_log

    @property
    def nonce(self) -> bytes:
        return self.bundle.nonce

    @property
    def address(self) -> str:
        return self.bundle.address

    @property
    def x25519_public(self) -> bytes:
        return self.bundle.x25519_public

    @property
    def gpus(self) -> tuple[BundleGpu, ...]:
        return self.bundle.gpus

    @classmethod
    def from_json(cls, doc: Any) -> Attestation:
        try:
            return cls(
                bundle=EvidenceBundle.from_json(doc),
                chain_id=_int(doc["chain_id"]),
                advertised=tuple(
                    (_str(a["name"]), _str(a["measurement"])) for a in _list(doc["agents"])
                ),
            )
        except (KeyError, TypeError, ValueError, AttestationError) as exc:
            raise GatewayVerificationError("attestation.format", f"malformed: {exc}") from None


@dataclass(frozen=True, slots=True)
class AttestedAgent:
    """An agent as the verified event log measures it."""

    name: str
    version: str
    measurement: bytes
    programs_digest: str


@dataclass(frozen=True)
class VerifiedGateway:
    """A gateway whose attestation verified: what its answers are checked against."""

    address: str
    x25519_public: bytes
    chain_id: int
    agents: Mapping[str, AttestedAgent]
    verified_quote: VerifiedQuote
    decision: PolicyDecision
    expected_measurement: bytes | None
    gpus: tuple[GpuResult, ...] = ()


@dataclass(frozen=True)
class InvokeResult:
    """A verified answer. `body`: the canonical output bytes; `signature`: 65 bytes."""

    output: Any
    body: bytes
    response_id: str
    agent: AttestedAgent
    request_sha256: str
    response_sha256: str
    signature: bytes
    encrypted: bool


def verify_attestation(
    att: Attestation,
    nonce: bytes,
    *,
    collateral: Collateral,
    now: datetime,
    trust_anchor: TrustAnchor,
    policy: Policy,
    expected_measurement: bytes | None,
    gpu_trust_anchors: Sequence[TrustAnchor] | None = None,
) -> VerifiedGateway:
    """Verify `att` for the caller's fresh `nonce` (see the module docstring), or raise
    `GatewayVerificationError`. GPU chains are verified to `gpu_trust_anchors` (default:
    NVIDIA's device root)."""
    if att.nonce != nonce:
        raise GatewayVerificationError("nonce", "the attestation answers another nonce")
    try:
        verified = verify_quote(att.quote, collateral, now=now, trust_anchor=trust_anchor)
    except AttestationError as exc:
        raise GatewayVerificationError("quote", exc.message) from None
    decision = policy.evaluate(verified, now=now)
    if not decision.accepted:
        raise GatewayVerificationError("policy", "; ".join(decision.reasons))
    report = verified.quote.report
    try:
        address = bytes.fromhex(att.address.removeprefix("0x"))
        check_worker_report_data(report.report_data, address, att.x25519_public, nonce)
    except (AttestationError, ValueError) as exc:
        raise GatewayVerificationError("binding", str(exc)) from None
    if not isinstance(report, TdReport10):
        raise GatewayVerificationError("event_log", "an SGX quote has no RTMR3 to replay against")
    agents = _measured_agents(att.event_log, report.rtmrs)
    if (why := policy.compose_reason(att.event_log)) is not None:
        raise GatewayVerificationError("policy", why)
    if {(a.name, a.measurement.hex()) for a in agents.values()} != set(att.advertised):
        raise GatewayVerificationError("agents", "the advertised agents are not the measured ones")
    pinned = [a for a in agents.values() if a.measurement == expected_measurement]
    if expected_measurement is not None and not pinned:
        raise GatewayVerificationError(
            "measurement",
            f"no measured agent has the pinned measurement {expected_measurement.hex()[:16]}...",
        )
    gpus = verify_gpus(
        att.gpus,
        spdm_nonce=gpu_nonce(nonce),
        now=now,
        trust_anchors=gpu_trust_anchors or (nvidia_device_root(),),
        policy=policy,
    )
    if problems := gpu_policy_reasons(gpus, policy):
        raise GatewayVerificationError("gpu", "; ".join(problems))
    return VerifiedGateway(
        address=to_checksum_address(att.address),
        x25519_public=att.x25519_public,
        chain_id=att.chain_id,
        agents=agents,
        verified_quote=verified,
        decision=decision,
        expected_measurement=expected_measurement,
        gpus=gpus,
    )


def _measured_agents(
    events: tuple[RuntimeEvent, ...], quoted: tuple[bytes, bytes, bytes, bytes]
) -> dict[str, AttestedAgent]:
    covered = {e.imr for e in events} | {3}
    initial = [_ZERO48 if i in covered else quoted[i] for i in range(4)]
    try:
        check_rtmrs(events, quoted, initial=initial)
        measured = agent_events(events)
        programs = _program_events(events)
    except AttestationError as exc:
        raise GatewayVerificationError("event_log", exc.message) from None
    agents: dict[str, AttestedAgent] = {}
    for m in measured:
        if m.name in agents:
            raise GatewayVerificationError("event_log", f"agent {m.name!r} is measured twice")
        if m.name not in programs:
            raise GatewayVerificationError("event_log", f"agent {m.name!r}: programs unmeasured")
        agents[m.name] = AttestedAgent(m.name, m.version, m.bundle_digest, programs[m.name])
    return agents


def _program_events(events: tuple[RuntimeEvent, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for event in events:
        if event.event != PROGRAMS_EVENT or event.imr != 3:
            continue
        try:
            body = safejson.loads(event.payload)
            name, digest = _str(body["name"]), _str(body["programs_digest"])
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"malformed programs event: {exc}"
            raise GatewayVerificationError("event_log", problem) from None
        if name in out:
            raise GatewayVerificationError("event_log", f"agent {name!r}: programs measured twice")
        out[name] = digest
    return out


def verify_exchange(
    request_body: bytes, response_body: bytes, text: str, signature: str, address: str
) -> None:
    """NEAR AI's check of an OpenAI-shaped answer: `text` is
    `sha256(request_body):sha256(response_body)` and `signature` recovers to `address`."""
    expected = signed_text(sha256_hex(request_body), sha256_hex(response_body))
    if text != expected:
        raise GatewayVerificationError("hashes", "the signed text is not over these bodies")
    _check_signer(text, signature, address)


def _check_signer(text: str, signature: str, address: str) -> None:
    try:
        signer = recover_signer(text, signature)
    except ValueError as exc:
        raise GatewayVerificationError("signature", str(exc)) from None
    if signer.lower() != address.lower():
        raise GatewayVerificationError("signature", f"signed by {signer}, not by {address}")


def verify_answer(
    answer: Any,
    body: bytes,
    verified: VerifiedGateway,
    attested: AttestedAgent,
    caller_key: X25519PrivateKey | None,
    context: EnvelopeContext,
) -> InvokeResult:
    """Check an invoke `answer` (parsed JSON) to the request `body` sent; `caller_key`: the
    reply key of an encrypted call (None: plain), `context`: the call's envelope context."""
    if not isinstance(answer, dict):
        raise GatewayVerificationError("response.format", "the answer is not a JSON object")
    try:
        request_sha256, response_sha256 = answer["request_sha256"], answer["response_sha256"]
        document = signed_document(answer)
        text = signed_text(request_sha256, response_sha256)
        signature, response_id = _str(answer["signature"]), _str(answer["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise GatewayVerificationError("response.format", f"malformed answer: {exc}") from None
    if request_sha256 != sha256_hex(body):
        raise GatewayVerificationError("request_hash", "the answer is not for the request sent")
    if response_sha256 != sha256_hex(document):
        raise GatewayVerificationError("response_hash", "the answer differs from what was signed")
    _check_signer(text, signature, verified.address)
    expected_agent = {
        "measurement": attested.measurement.hex(),
        "name": attested.name,
        "programs_digest": attested.programs_digest,
        "version": attested.version,
    }
    if answer["agent"] != expected_agent:
        raise GatewayVerificationError("agent", "the answer names another agent or measurement")
    output, canonical = _payload(answer, caller_key, context)
    return InvokeResult(
        output=output,
        body=canonical,
        response_id=response_id,
        agent=attested,
        request_sha256=request_sha256,
        response_sha256=response_sha256,
        signature=bytes.fromhex(signature.removeprefix("0x")),
        encrypted=caller_key is not None,
    )


def _payload(
    answer: dict[str, Any], caller_key: X25519PrivateKey | None, context: EnvelopeContext
) -> tuple[Any, bytes]:
    if caller_key is None:
        if "output" not in answer:
            raise GatewayVerificationError("response.format", "a plain answer carries output")
        return answer["output"], dump_canonical(answer["output"])
    if not isinstance(answer.get("envelope"), str):
        raise GatewayVerificationError("envelope", "an encrypted call got no envelope back")
    try:
        sealed = base64.b64decode(answer["envelope"], validate=True)
        canonical = open_response(caller_key, sealed, context)
        return safejson.loads(canonical), canonical
    except (binascii.Error, EnvelopeError, ValueError) as exc:
        raise GatewayVerificationError("envelope", f"the answer does not open: {exc}") from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value
