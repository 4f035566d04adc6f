"""The worker's FastAPI gateway: `create_app(tee=..., keys=..., agents=..., chain_id=...)`.

    GET  /v1/attestation?nonce=HEX32     quote binding the worker's keys and the nonce, event log,
                                         TEE kind, chain address, X25519 key, chain id, agents,
                                         GPU reports over gpu_nonce(nonce) (`attestation.evidence`)
    GET  /v1/agents                      the served agents, their measurements and programs
    POST /v1/agents/{name}/invoke        plain JSON input, or an envelope (`protocol`); signed;
                                         `Server-Timing: agent;dur=MS` (the agent's share)
    GET  /v1/signature/{id}              the signature of a response, by response id
    GET  /v1/attestation/report          the same evidence in NEAR AI private-ml's shape
    POST /v1/embeddings, GET /v1/models  OpenAI's shapes, for agents that embed
    GET  /healthz, GET /metrics          liveness; Prometheus text format

The wire protocol (what is signed, how envelopes look) is documented in `enclave.gateway
.protocol`. Everything the app uses is held in one `GatewayState`, reached through the
`get_gateway` dependency (tests may override it). Every HTTP request gets an id, in its logs and
the `X-Request-ID` response header (`attestation.service.request_id`, shared with the attestation
service); it is unrelated to an envelope's `request_id`, which binds the envelope's context.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from agents.runtime import Reply
from attestation import safejson
from attestation.eventlog import events_to_json
from attestation.service.request_id import RequestIdMiddleware
from enclave.envelope import EnvelopeContext, seal_response
from enclave.errors import EnclaveError, EnvelopeError
from enclave.gateway.compat import router as compat_router
from enclave.gateway.errors import MalformedRequestError, UnknownResponseError, http_status
from enclave.gateway.metrics import GatewayMetrics
from enclave.gateway.protocol import (
    ENVELOPE_MEDIA_TYPE,
    REPLY_KEY_SIZE,
    WORKER_BINDING,
    encode_answer,
    encode_document,
    sha256_hex,
    signed_document,
)
from enclave.gateway.state import (
    Gateway,
    GatewayLimits,
    GatewayState,
    ServedAgent,
    json_response,
    new_response_id,
    parse_nonce,
    read_body,
)
from enclave.keys import EnclaveKeys
from enclave.tee.base import TeeBackend
from enclave.tee.gpu import GpuSource

__all__ = ["create_app"]

log = logging.getLogger(__name__)
_REQUEST_ID_MAX = 128


def create_app(
    *,
    tee: TeeBackend,
    keys: EnclaveKeys,
    agents: Mapping[str, ServedAgent],
    chain_id: int,
    limits: GatewayLimits = GatewayLimits(),  # noqa: B008 - frozen, immutable default
    gpus: GpuSource | None = None,
    metrics: GatewayMetrics | None = None,
) -> FastAPI:
    """The gateway over `agents` (name -> loaded runtime, each already measured into RTMR3 with
    `measure_agents_into`: `ValueError` otherwise). `chain_id` enters every envelope context;
    `gpus`: where the attestation's GPU evidence comes from (None: no GPUs, an empty list);
    `metrics`: the gateway's metrics (and the registry `GET /metrics` serves)."""
    state = GatewayState(
        tee=tee, keys=keys, agents=dict(agents), chain_id=chain_id, limits=limits, gpus=gpus,
        metrics=metrics or GatewayMetrics(),
    )  # fmt: skip
    app = FastAPI(title="Enclava worker gateway", version="1")
    app.state.gateway = state
    app.include_router(_router)
    app.include_router(compat_router)
    _install_error_handlers(app, state)
    app.add_middleware(RequestIdMiddleware)
    return app


def _error(state: GatewayState, code: str, message: str, status: int) -> Response:
    state.metrics.errors.labels(code=code).inc()
    return json_response({"error": {"code": code, "message": message}}, status)


def _install_error_handlers(app: FastAPI, state: GatewayState) -> None:
    async def enclave_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EnclaveError)
        return _error(state, exc.code, exc.message, http_status(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(state, code, str(exc.detail), exc.status_code)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return _error(state, "invalid_request", problems, 422)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return _error(state, "internal_error", "internal error", 500)

    app.add_exception_handler(EnclaveError, enclave_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


_router = APIRouter()


@_router.get("/v1/attestation", summary="Quote binding the worker's keys to a fresh nonce")
async def attestation(gateway: Gateway, nonce: str | None = None) -> Response:
    nonce_bytes = parse_nonce(nonce)
    report_data = gateway.keys.report_data(nonce_bytes)
    quote, events = await gateway.evidence(report_data, "enclava")
    gpus = await gateway.gpu_evidence(nonce_bytes)
    return json_response(
        {
            "tee": gateway.tee.kind,
            "quote": base64.b64encode(quote).decode(),
            "event_log": events_to_json(events),
            "nonce": nonce_bytes.hex(),
            "report_data": report_data.hex(),
            "binding": WORKER_BINDING,
            "address": gateway.keys.address,
            "x25519_public": gateway.keys.x25519_public.hex(),
            "chain_id": gateway.chain_id,
            "agents": [gateway.describe(name) for name in gateway.agents],
            "gpus": [gpu.to_json() for gpu in gpus],
        }
    )


@_router.get("/v1/agents", summary="The served agents")
async def list_agents(gateway: Gateway) -> Response:
    return json_response({"agents": [gateway.describe(name) for name in gateway.agents]})


@_router.post("/v1/agents/{name}/invoke", summary="Call an agent; the answer is signed")
async def invoke(name: str, request: Request, gateway: Gateway) -> Response:
    gateway.agent(name)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    async with gateway.admitted():
        body = await read_body(request, gateway.limits.max_body_bytes)
        if media_type == ENVELOPE_MEDIA_TYPE:
            envelope, reply = await _invoke_sealed(gateway, name, body)
        else:
            reply, envelope = await gateway.call(name, body), None
    response_id = new_response_id("inv")
    agent = {
        "measurement": reply.agent_measurement,
        "name": name,
        "programs_digest": reply.programs_digest,
        "version": gateway.agents[name].manifest.version,
    }
    if envelope is None:  # the agent's canonical output, spliced in rather than encoded again
        document = encode_document(agent, response_id, reply.body)
    else:
        document = signed_document({"agent": agent, "id": response_id, "envelope": envelope})
    request_sha256 = sha256_hex(body)
    response_sha256 = sha256_hex(document)
    record = gateway.sign(response_id, name, request_sha256, response_sha256)
    fields = {
        "request_sha256": request_sha256,
        "response_sha256": response_sha256,
        "signature": record.signature,
        "signing_address": record.signing_address,
    }
    # W3C Server-Timing: the agent's share of the call (validation, batching, the model), so a
    # caller can tell the gateway's own overhead from the model's time.
    timing = {"Server-Timing": f"agent;dur={reply.latency_s * 1000:.3f}"}
    return Response(encode_answer(document, fields), media_type="application/json", headers=timing)


async def _invoke_sealed(gateway: GatewayState, name: str, body: bytes) -> tuple[str, Reply]:
    envelope, request_id = _parse_envelope_request(body)
    context = EnvelopeContext(name, request_id, gateway.chain_id)
    plaintext = gateway.keys.open_request(envelope, context)
    if len(plaintext) < REPLY_KEY_SIZE:
        raise EnvelopeError(f"the envelope plaintext must start with a {REPLY_KEY_SIZE}-byte key")
    reply_key, data = plaintext[:REPLY_KEY_SIZE], plaintext[REPLY_KEY_SIZE:]
    reply = await gateway.call(name, data, withhold=True)
    sealed = seal_response(reply_key, reply.body, context)
    return base64.b64encode(sealed).decode(), reply


def _parse_envelope_request(body: bytes) -> tuple[bytes, str]:
    try:
        doc = safejson.loads(body)
    except ValueError:
        raise MalformedRequestError("an envelope request is a JSON object") from None
    if not isinstance(doc, dict) or set(doc) != {"envelope", "request_id"}:
        raise MalformedRequestError("an envelope request has exactly: envelope, request_id")
    envelope, request_id = doc["envelope"], doc["request_id"]
    if not isinstance(request_id, str) or not 0 < len(request_id) <= _REQUEST_ID_MAX:
        raise MalformedRequestError(f"request_id must be 1 to {_REQUEST_ID_MAX} characters")
    if not isinstance(envelope, str):
        raise MalformedRequestError("envelope must be base64 text")
    try:
        return base64.b64decode(envelope, validate=True), request_id
    except (binascii.Error, ValueError):
        raise MalformedRequestError("envelope is not valid base64") from None


@_router.get("/v1/signature/{response_id}", summary="A response's signature, by response id")
async def signature(
    response_id: str,
    gateway: Gateway,
    model: str | None = None,
    signing_algo: str | None = None,
) -> Response:
    """NEAR AI's `{text, signature, signing_address, signing_algo}` (plus `id`, `model`);
    `model`, when sent, must be the agent that answered."""
    if signing_algo not in (None, "ecdsa"):
        raise MalformedRequestError(
            f"unsupported signing_algo {signing_algo[:32]!r}: this gateway signs with ecdsa",
            code="unsupported_signing_algo",
        )
    record = gateway.signature(response_id)
    if model is not None and model != record.agent:
        raise UnknownResponseError(
            f"response {response_id[:64]!r} is not from model {model[:64]!r}"
        )
    return json_response(record.to_dict())


@_router.get("/healthz", summary="Liveness")
async def healthz(gateway: Gateway) -> Response:
    return json_response(
        {
            "status": "ok",
            "tee": gateway.tee.kind,
            "address": gateway.keys.address,
            "agents": sorted(gateway.agents),
            "in_flight": gateway.in_flight,
        }
    )


@_router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def metrics(gateway: Gateway) -> Response:
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)
