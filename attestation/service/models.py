"""Request and response models of the HTTP API (pydantic; the OpenAPI schema is built from them).

Requests are validated strictly (`extra="forbid"`, no type coercion). Responses are built as
plain dicts on the hot path and documented by the models here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AgentModel",
    "BindingReport",
    "ErrorResponse",
    "EventLogEntry",
    "EventLogReport",
    "GpuEvidenceModel",
    "GpuResultModel",
    "HealthResponse",
    "JwksResponse",
    "PoliciesResponse",
    "SelfAttestationResponse",
    "SignedVerdictModel",
    "SignersResponse",
    "VerdictDomainModel",
    "VerifyRequest",
    "VerifyResponse",
    "WorkerBinding",
]

_HEX32 = r"^(0x)?[0-9a-fA-F]{64}$"
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EventLogEntry(BaseModel):
    """One runtime event in dstack's JSON layout (hex digest and payload)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    imr: int = Field(ge=0, le=3)
    event_type: int = Field(ge=0, le=0xFFFFFFFF)
    digest: str = Field(pattern=r"^[0-9a-fA-F]{96}$")
    event: str = Field(max_length=4096)
    event_payload: str = Field(default="", pattern=r"^(?:[0-9a-fA-F]{2})*$")


class WorkerBinding(_Strict):
    """Key material to rebuild a worker's REPORTDATA:
    SHA-512("enclava/worker/v1" || address || x25519_public || nonce)."""

    address: str = Field(pattern=_ADDRESS, description="the worker's chain address")
    x25519_public: str = Field(pattern=_HEX32, description="its X25519 public key (32 bytes)")
    nonce: str = Field(pattern=_HEX32, description="the verifier's nonce (32 bytes)")


class GpuCcStateModel(_Strict):
    enabled: bool = Field(description="CC mode on, as the driver inside the TD reports it")
    devtools: bool = Field(description="CC with developer tools (the GPU is debuggable)")
    environment: str = Field(max_length=64, description="prod, sim, ...")


class GpuEvidenceModel(_Strict):
    """One GPU of an attestation bundle (`attestation.evidence`), as a worker gateway serves it.
    The report must answer SHA-256("enclava/gpu/v1" || binding.nonce)."""

    report: str = Field(
        min_length=1, max_length=64 * 1024, description="SPDM attestation report, base64"
    )
    cert_chain: str = Field(
        min_length=1, max_length=64 * 1024, description="PEM certificates, leaf first"
    )
    cc_state: GpuCcStateModel
    uuid: str = Field(default="", max_length=128)
    arch: str = Field(default="", max_length=32)


class VerdictDomainModel(_Strict):
    """The `SignedVerdictVerifier` an EIP-712 verdict is for."""

    chain_id: int = Field(ge=0, le=2**256 - 1)
    verifying_contract: str = Field(pattern=_ADDRESS)


class VerifyRequest(_Strict):
    quote: str = Field(
        min_length=1,
        description="DCAP quote: base64 (standard or URL-safe), or hex (0x optional)",
    )
    event_log: list[EventLogEntry] | None = Field(
        default=None,
        description="runtime event log (dstack JSON); replayed against the quoted RTMRs",
    )
    report_data: str | None = Field(
        default=None,
        pattern=r"^(0x)?[0-9a-fA-F]{128}$",
        description="expected REPORTDATA (64 bytes)",
    )
    binding: WorkerBinding | None = Field(
        default=None,
        description="worker keys + nonce: the expected REPORTDATA is rebuilt from them",
    )
    policy: str | dict[str, Any] | None = Field(
        default=None, description="a policy name (GET /v1/policies) or an inline policy document"
    )
    agent: str | None = Field(
        default=None, max_length=256, description="which measured agent the EIP-712 verdict is for"
    )
    verdict_domain: VerdictDomainModel | None = Field(
        default=None, description="chain and verifier contract for the EIP-712 verdict"
    )
    gpu_evidence: list[GpuEvidenceModel] | None = Field(
        default=None,
        max_length=16,
        description="GPU reports over gpu_nonce(binding.nonce), verified with the quote",
    )

    @model_validator(mode="after")
    def _one_binding(self) -> VerifyRequest:
        if self.report_data is not None and self.binding is not None:
            raise ValueError("give report_data or binding, not both")
        if self.gpu_evidence and self.binding is None:
            raise ValueError("gpu_evidence needs binding: GPU reports answer its nonce")
        return self


class CheckModel(BaseModel):
    name: str
    outcome: Literal["pass", "fail", "not run", "n/a"]
    detail: str


class TrustAnchorModel(BaseModel):
    label: str
    sha256: str
    simulated: bool


class CollateralSummaryModel(BaseModel):
    digest: str
    tcb_evaluation_data_number: int
    tcb_info_issue_date: str
    tcb_info_next_update: str
    qe_identity_issue_date: str
    qe_identity_next_update: str


class CollateralSourceModel(BaseModel):
    upstream: str
    state: Literal["fresh", "stale"]
    next_update: str


class PolicyRef(BaseModel):
    name: str | None
    inline: bool
    sha256: str


class AgentModel(BaseModel):
    name: str
    version: str
    digest: str = Field(description="the bundle's SHA-384 (hex)")
    measurement: str = Field(description="on-chain measurement: 0x SHA-256(digest)")


class EventLogReport(BaseModel):
    events: int
    replayed: dict[str, str | None]
    matches: bool
    problem: str | None


class BindingReport(BaseModel):
    kind: Literal["report_data", "worker_keys"]
    expected: str
    matches: bool
    address: str | None


class SignedVerdictModel(BaseModel):
    worker: str
    measurement: str
    tcb_status: str
    tcb_status_code: int
    quote_hash: str
    expires_at: int
    domain: dict[str, Any]
    signer: str
    digest: str
    signature: str
    evidence: str = Field(description="abi-encoded evidence for WorkerRegistry.register")


class GpuResultModel(BaseModel):
    """One GPU's result (`attestation.evidence.GpuResult.to_dict()`); the facts (model, FWID,
    driver, CC state, ...) are present when it verified."""

    model_config = ConfigDict(extra="allow")

    index: int
    uuid: str
    verified: bool
    accepted: bool
    reasons: list[str]
    error: dict[str, str] | None


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class VerifyResponse(BaseModel):
    """The explained verdict (`attestation.verdict.Verdict.to_dict()`), with the service's
    own checks folded into `accepted` / `reasons`, and the signed results when accepted."""

    verified: bool
    accepted: bool
    tcb_status: str | None
    advisory_ids: list[str]
    tee: str | None
    quote_version: int | None
    fmspc: str | None
    measurements: dict[str, str]
    reasons: list[str]
    checks: list[CheckModel]
    relaxations: list[str]
    quote_sha256: str | None = None
    trust_anchor: TrustAnchorModel | None = None
    collateral: CollateralSummaryModel | None = None
    error: ErrorDetail | None = None
    policy: PolicyRef
    collateral_source: CollateralSourceModel
    event_log: EventLogReport | None
    agents: list[AgentModel]
    binding: BindingReport | None
    gpus: list[GpuResultModel] = Field(description="one result per GPU of gpu_evidence")
    bundle_sha256: str = Field(
        description="quote hash without GPUs, else the whole bundle's (the verdict's quoteHash)"
    )
    token: str | None = Field(description="ES256 attestation token (JWT), when accepted")
    signed_verdict: SignedVerdictModel | None
    signed_verdict_omitted: str | None = Field(description="why there is no EIP-712 verdict")
    verifier_version: str


class JwkModel(BaseModel):
    kty: str
    crv: str
    x: str
    y: str
    use: str
    alg: str
    kid: str


class JwksResponse(BaseModel):
    keys: list[JwkModel]


class SignersResponse(BaseModel):
    address: str = Field(description="the EIP-712 verdict signer")
    verdict_type: str
    domain: dict[str, Any] | None = Field(description="the default EIP-712 domain, if set")
    token_kid: str


class PolicyEntry(BaseModel):
    name: str
    default: bool
    sha256: str
    relaxations: list[str]
    policy: dict[str, Any]


class PoliciesResponse(BaseModel):
    policies: list[PolicyEntry]
    inline_allowed: bool


class HealthResponse(BaseModel):
    status: Literal["ok"]
    verifier_version: str
    collateral: list[dict[str, Any]]


class SelfAttestationResponse(BaseModel):
    tee: str
    quote: str = Field(description="base64")
    event_log: list[dict[str, Any]]
    report_data: str
    nonce: str
    signer: str
    token_kid: str
    binding: str
