"""What one gateway app holds and does besides routing: limits, the served agents, admission,
signing (with the bounded store of signatures by response id), quotes, GPU evidence and agent
calls.

Everything here runs on the event loop except quotes and GPU reports (device calls, sent to a
worker thread) and the agents' batches (`AgentRuntime.ainvoke` runs them on the runtime's own
batcher thread). Admission counts are plain integers: only the event loop thread touches them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from agents.bundle import Manifest, Measurement
from agents.errors import AgentError
from agents.runtime import Reply
from attestation.bundle import BundleGpu
from attestation.eventlog import RuntimeEvent, agent_event, agent_events
from attestation.gpu import gpu_nonce
from attestation.service.body import read_capped_body
from enclave.errors import EnclaveError
from enclave.gateway.errors import (
    AgentFailedError,
    AgentTimeoutError,
    MalformedRequestError,
    OverloadedError,
    QuoteUnavailableError,
    RequestTooLargeError,
    UnknownAgentError,
    UnknownResponseError,
)
from enclave.gateway.metrics import GatewayMetrics
from enclave.gateway.protocol import SIGNING_ALGO, programs_event, signed_text
from enclave.keys import EnclaveKeys
from enclave.tee.base import TeeBackend
from enclave.tee.gpu import GpuSource, bundle_gpu

__all__ = [
    "Gateway",
    "GatewayLimits",
    "GatewayState",
    "ServedAgent",
    "SignatureRecord",
    "get_gateway",
    "json_response",
    "measure_agents_into",
    "new_response_id",
    "parse_nonce",
    "read_body",
]


class ServedAgent(Protocol):
    """What the gateway needs of an agent; `agents.runtime.AgentRuntime` is one."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def measurement(self) -> Measurement: ...

    @property
    def programs_digest(self) -> str: ...

    def program_digests(self) -> dict[str, str]: ...

    async def ainvoke(self, request: bytes | str | Mapping[str, Any]) -> Reply: ...


@dataclass(frozen=True)
class GatewayLimits:
    """`max_body_bytes`: request bodies (413 above); `max_concurrent`: invocations in flight
    (429 above); `invoke_timeout_s`: one call (504 after); `signature_cache`: signatures kept for
    `GET /v1/signature/{id}` (least recently used dropped first)."""

    max_body_bytes: int = 1 << 20
    max_concurrent: int = 64
    invoke_timeout_s: float = 60.0
    signature_cache: int = 10_000

    def __post_init__(self) -> None:
        if min(self.max_body_bytes, self.max_concurrent, self.signature_cache) < 1:
            raise ValueError("gateway limits must be positive")
        if not self.invoke_timeout_s > 0:
            raise ValueError("invoke_timeout_s must be positive")


@dataclass(frozen=True, slots=True)
class SignatureRecord:
    """One signed response, as `GET /v1/signature/{id}` serves it (NEAR AI's shape)."""

    id: str
    agent: str
    text: str
    signature: str
    signing_address: str

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "model": self.agent,
            "text": self.text,
            "signature": self.signature,
            "signing_address": self.signing_address,
            "signing_algo": SIGNING_ALGO,
        }


def measure_agents_into(tee: TeeBackend, agents: Mapping[str, ServedAgent]) -> None:
    """Extend RTMR3 with each agent's bundle measurement (`attestation.eventlog.agent_event`)
    and its compiled programs (`protocol.programs_event`), in the mapping's order. The worker
    calls this once at boot, before `create_app`."""
    for agent in agents.values():
        manifest = agent.manifest
        tee.extend_rtmr(agent_event(manifest.name, manifest.version, agent.measurement.digest))
        tee.extend_rtmr(
            programs_event(manifest.name, agent.program_digests(), agent.programs_digest)
        )


@dataclass
class GatewayState:
    tee: TeeBackend
    keys: EnclaveKeys
    agents: Mapping[str, ServedAgent]
    chain_id: int
    limits: GatewayLimits
    gpus: GpuSource | None = None
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    in_flight: int = field(default=0, init=False)
    _signatures: OrderedDict[str, SignatureRecord] = field(
        default_factory=OrderedDict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        measured = {(a.name, a.bundle_digest) for a in agent_events(self.tee.event_log())}
        for name, agent in self.agents.items():
            if name != agent.manifest.name:
                raise ValueError(f"agent {agent.manifest.name!r} is served under {name!r}")
            if (name, agent.measurement.digest) not in measured:
                raise ValueError(
                    f"agent {name!r} is not measured into RTMR3: call measure_agents_into first"
                )

    def agent(self, name: str) -> ServedAgent:
        try:
            return self.agents[name]
        except KeyError:
            raise UnknownAgentError(
                f"no agent {name[:64]!r}; served: {sorted(self.agents)}"
            ) from None

    def describe(self, name: str) -> dict[str, Any]:
        """An agent as `/v1/agents` and the attestation endpoints list it."""
        agent = self.agents[name]
        return {
            "name": name,
            "version": agent.manifest.version,
            "description": agent.manifest.description,
            "measurement": agent.measurement.hex,
            "programs_digest": agent.programs_digest,
            "programs": agent.program_digests(),
            "openai_embeddings": self.embeds(name),
        }

    def embeds(self, name: str) -> bool:
        """Whether agent `name` speaks the embeddings shape (text(s) under `input` in, and
        `embeddings`, `dimensions`, `tokens` out), so `POST /v1/embeddings` may call it."""
        agent = self.agents.get(name)
        if agent is None:
            return False
        document = agent.manifest.document
        inputs = document.get("input_schema", {}).get("properties", {})
        required = set(document.get("output_schema", {}).get("required", ()))
        return "input" in inputs and {"embeddings", "dimensions", "tokens"} <= required

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """One invocation slot, or `OverloadedError` at once (callers retry; nothing queues)."""
        if self.in_flight >= self.limits.max_concurrent:
            raise OverloadedError(
                f"{self.in_flight} invocations in flight, the limit is "
                f"{self.limits.max_concurrent}; retry later"
            )
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    async def call(
        self, name: str, request: bytes | Mapping[str, Any], *, withhold: bool = False
    ) -> Reply:
        """Run agent `name` on `request` without blocking the event loop."""
        agent = self.agent(name)
        started = time.perf_counter()
        outcome = "ok"
        try:
            async with asyncio.timeout(self.limits.invoke_timeout_s):  # no extra task
                return await agent.ainvoke(request)
        except AgentError as exc:
            outcome = exc.code
            raise AgentFailedError.from_agent(exc, withhold=withhold) from None
        except TimeoutError:
            outcome = AgentTimeoutError.code
            raise AgentTimeoutError(
                f"agent {name!r} did not answer within {self.limits.invoke_timeout_s} s"
            ) from None
        finally:
            self.metrics.invocations.labels(agent=name, outcome=outcome).inc()
            self.metrics.duration.labels(agent=name).observe(time.perf_counter() - started)

    async def evidence(
        self, report_data: bytes, endpoint: str
    ) -> tuple[bytes, tuple[RuntimeEvent, ...]]:
        """A quote over `report_data` and the event log, read together in a worker thread."""

        def read() -> tuple[bytes, tuple[RuntimeEvent, ...]]:
            return self.tee.quote(report_data), self.tee.event_log()

        try:
            evidence = await run_in_threadpool(read)
        except EnclaveError as exc:
            raise QuoteUnavailableError(f"the TEE produced no quote: {exc.message}") from None
        self.metrics.attestations.labels(endpoint=endpoint).inc()
        return evidence

    async def gpu_evidence(self, nonce: bytes) -> tuple[BundleGpu, ...]:
        """Every GPU's report over `gpu_nonce(nonce)` (`nonce`: the request nonce that
        REPORTDATA binds too), in a worker thread; none without a GPU source."""
        source = self.gpus
        if source is None:
            return ()
        try:
            collected = await run_in_threadpool(source.collect, gpu_nonce(nonce))
        except EnclaveError as exc:
            raise QuoteUnavailableError(f"the GPUs produced no report: {exc.message}") from None
        return tuple(bundle_gpu(e) for e in collected)

    def sign(
        self, response_id: str, agent: str, request_sha256: str, response_sha256: str
    ) -> SignatureRecord:
        """Sign `request_sha256:response_sha256` and keep the signature under `response_id`."""
        text = signed_text(request_sha256, response_sha256)
        signature = "0x" + self.keys.sign_text(text).hex()
        record = SignatureRecord(response_id, agent, text, signature, self.keys.address)
        self._signatures[response_id] = record
        while len(self._signatures) > self.limits.signature_cache:
            self._signatures.popitem(last=False)
        return record

    def signature(self, response_id: str) -> SignatureRecord:
        record = self._signatures.get(response_id)
        if record is None:
            raise UnknownResponseError(
                f"no signature kept for response {response_id[:64]!r} (unknown or evicted)"
            )
        self._signatures.move_to_end(response_id)
        return record


def new_response_id(prefix: str) -> str:
    """A fresh, unguessable response id (`prefix-` and 24 hex digits)."""
    return f"{prefix}-{secrets.token_hex(12)}"


async def get_gateway(request: Request) -> GatewayState:
    """The app's state (async: FastAPI would run a sync dependency in a worker thread)."""
    state: GatewayState = request.app.state.gateway
    return state


Gateway = Annotated[GatewayState, Depends(get_gateway)]


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status, headers, media_type="application/json")


def parse_nonce(nonce: str | None) -> bytes:
    """A verifier's nonce: 32 bytes as 64 hex digits, with or without `0x`."""
    if nonce is None:
        raise MalformedRequestError("a nonce is required: 32 bytes, hex", code="invalid_nonce")
    try:
        raw = bytes.fromhex(nonce.removeprefix("0x"))
    except ValueError:
        raise MalformedRequestError("the nonce is not hex", code="invalid_nonce") from None
    if len(raw) != 32:
        raise MalformedRequestError(
            f"the nonce must be 32 bytes, got {len(raw)}", code="invalid_nonce"
        )
    return raw


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    return await read_capped_body(
        request, limit, too_large=RequestTooLargeError, malformed=MalformedRequestError
    )
