"""The attestation service's FastAPI app: `create_app(settings, signing=...)`.

    POST /v1/verify              evidence in; explained verdict, token and EIP-712 verdict out
    GET  /v1/attestation?nonce=  the service's own quote, binding its keys and the nonce
    GET  /.well-known/jwks.json  the token key (ES256)
    GET  /v1/signers             the EIP-712 verdict signer
    GET  /v1/policies            the named policies
    GET  /healthz                liveness and collateral state
    GET  /metrics                Prometheus text format

Everything the app uses is built here and held in one `ServiceState`, reached through the
`get_service` dependency. POST /v1/verify, the hot path, is a plain Starlette endpoint that
reads it from `app.state` and skips dependency solving (`openapi.py` documents it). The clock
is passed in (`clock=`), so tests pin time. Request bodies are read with a size cap and parsed
with `safejson` before pydantic sees them (the stdlib decoder FastAPI would use can overflow the
C stack on deeply nested input, because eth-account's import raises the recursion limit).
Every request gets an id (`request_id`), in the logs it causes and the `X-Request-ID` header.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from attestation.errors import AttestationError
from attestation.eventlog import events_to_json
from attestation.pcs import CollateralCache, PcsClient
from attestation.pki import TrustAnchor
from attestation.service.body import read_capped_body
from attestation.service.collateral import CollateralProvider
from attestation.service.errors import (
    MalformedRequestError,
    NoSelfAttestationError,
    RequestTooLargeError,
    SelfAttestationError,
    http_status,
)
from attestation.service.keys import SelfAttestor, ServiceKeys, service_report_data
from attestation.service.metrics import ServiceMetrics
from attestation.service.models import (
    ErrorResponse,
    HealthResponse,
    JwksResponse,
    PoliciesResponse,
    SelfAttestationResponse,
    SignersResponse,
)
from attestation.service.openapi import service_openapi
from attestation.service.pipeline import VerificationPipeline
from attestation.service.policies import PolicySet, policy_to_dict
from attestation.service.request_id import RequestIdMiddleware
from attestation.service.settings import ServiceSettings
from attestation.service.upstreams import OfflineUpstream, PcsUpstream, TrustDomain, Upstream
from attestation.token import VERDICT_TYPE

__all__ = [
    "Clock",
    "ServiceState",
    "build_provider",
    "create_app",
    "get_service",
    "utc_now",
]

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _version() -> str:
    try:
        return f"enclava-attestation/{version('enclava')}"
    except PackageNotFoundError:
        return "enclava-attestation/0+unknown"


@dataclass
class ServiceState:
    """Everything one app holds: built once by `create_app`, shared by every request."""

    settings: ServiceSettings
    pipeline: VerificationPipeline
    provider: CollateralProvider
    metrics: ServiceMetrics
    attestor: SelfAttestor | None
    clock: Clock


async def get_service(request: Request) -> ServiceState:
    """The app's state (async: FastAPI would run a sync dependency in a worker thread)."""
    state: ServiceState = request.app.state.service
    return state


Service = Annotated[ServiceState, Depends(get_service)]


def build_provider(
    settings: ServiceSettings,
    *,
    dev_domains: Sequence[TrustDomain] = (),
    pcs_transport: httpx.BaseTransport | None = None,
) -> CollateralProvider:
    """Intel's root with PCS / PCCS (through the disk cache) or the offline directory, then
    `dev_domains` (simulators; dev configuration only)."""
    upstream: Upstream
    if settings.collateral_mode == "offline":
        assert settings.offline_dir is not None
        upstream = OfflineUpstream(settings.offline_dir)
    else:
        client = PcsClient(
            settings.pcs_url,
            root_ca_crl_url=settings.root_ca_crl_url,
            transport=pcs_transport,
            timeout=settings.pcs_timeout_seconds,
        )
        cache = None if settings.cache_dir is None else CollateralCache(Path(settings.cache_dir))
        upstream = PcsUpstream(client, cache)
    every = settings.refresh_every_seconds
    return CollateralProvider(
        [TrustDomain(TrustAnchor.intel(), upstream), *dev_domains],
        refresh_before=timedelta(seconds=settings.refresh_before_seconds),
        refresh_every=None if every is None else timedelta(seconds=every),
        retry_after=timedelta(seconds=settings.retry_after_seconds),
    )


def create_app(
    settings: ServiceSettings,
    *,
    signing: ServiceKeys,
    self_attestation: SelfAttestor | None = None,
    dev_domains: Sequence[TrustDomain] = (),
    collateral: CollateralProvider | None = None,
    clock: Clock = utc_now,
    pcs_transport: httpx.BaseTransport | None = None,
) -> FastAPI:
    """The service. `signing`: its keys; `self_attestation`: its own TEE evidence (None: not in
    a TEE); `dev_domains`: extra roots with their collateral (the simulator's), refused unless
    `settings.dev`; `collateral`: a ready provider instead of one built from `settings`."""
    if collateral is not None and dev_domains:
        raise ValueError("pass dev_domains or a ready collateral provider, not both")
    provider = collateral or build_provider(
        settings, dev_domains=dev_domains, pcs_transport=pcs_transport
    )
    if not settings.dev and any(not d.anchor.is_intel for d in provider.domains):
        raise ValueError("non-Intel trust anchors (simulators) need a dev configuration")
    pipeline = VerificationPipeline(
        settings,
        keys=signing,
        provider=provider,
        policies=PolicySet.from_settings(settings),
        version=_version(),
    )
    state = ServiceState(
        settings, pipeline, provider, ServiceMetrics(provider, clock), self_attestation, clock
    )
    app = FastAPI(
        title="Enclava attestation service",
        version=pipeline.version.split("/", 1)[1],
        lifespan=_lifespan,
    )
    app.state.service = state
    app.router.add_route("/v1/verify", verify, methods=["POST"], include_in_schema=False)
    app.include_router(_router)
    _install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.openapi = lambda: service_openapi(app)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.service
    interval = state.settings.refresh_interval_seconds
    task = asyncio.create_task(_refresh_forever(state, interval)) if interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
        state.provider.close()


async def _refresh_forever(state: ServiceState, interval: float) -> None:
    """Refresh collateral before it goes stale, whether or not requests come."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(state.provider.refresh_due, state.clock())
        except Exception:
            log.exception("background collateral refresh failed")


def _json(body: Any, status: int = 200) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type="application/json")


def _error(code: str, message: str, status: int) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


def _install_error_handlers(app: FastAPI) -> None:
    async def attestation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AttestationError)
        return _error(exc.code, exc.message, http_status(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(code, str(exc.detail), exc.status_code)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return _error("invalid_request", problems, 422)

    app.add_exception_handler(AttestationError, attestation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    return await read_capped_body(
        request, limit, too_large=RequestTooLargeError, malformed=MalformedRequestError
    )


_router = APIRouter()


async def verify(request: Request) -> Response:
    """POST /v1/verify. A plain Starlette endpoint: the hot path skips FastAPI's dependency
    solving and response handling (its schema is added by `service_openapi`)."""
    started = time.perf_counter()
    service: ServiceState = request.app.state.service
    now = service.clock()
    pipeline = service.pipeline
    outcome = "invalid"
    try:
        body = await _read_body(request, service.settings.max_body_bytes)
        prepared = pipeline.prepare(pipeline.parse(body))
        found = service.provider.lookup(prepared.route, now)
        if found.collateral is None:
            found = await run_in_threadpool(service.provider.obtain, prepared.route, now)
        outcome, answer = pipeline.answer(prepared, found, now)
    except AttestationError as exc:
        outcome = "unavailable" if http_status(exc) == 503 else "invalid"
        raise
    finally:
        service.metrics.observe(outcome, time.perf_counter() - started)
    response = _json(answer)
    if found.refresh:  # collateral is due for refresh: fetch it after answering
        response.background = BackgroundTask(service.provider.refresh, prepared.route, now)
    return response


@_router.get(
    "/v1/attestation",
    response_model=None,
    responses={
        200: {"model": SelfAttestationResponse},
        404: {"model": ErrorResponse, "description": "the service does not run in a TEE"},
        422: {"model": ErrorResponse, "description": "the nonce is not 32 bytes of hex"},
        503: {"model": ErrorResponse, "description": "the TEE did not produce a quote"},
    },
    summary="The service's own quote, binding its signing keys and the nonce",
)
async def self_attestation(
    service: Service,
    nonce: Annotated[str, Query(pattern=r"^(0x)?[0-9a-fA-F]{64}$", description="32 bytes, hex")],
) -> Response:
    if service.attestor is None:
        raise NoSelfAttestationError("this service does not run in a TEE: it has no own quote")
    pipeline = service.pipeline
    nonce_bytes = bytes.fromhex(nonce.removeprefix("0x"))
    signer = pipeline.signer.address
    report_data = service_report_data(signer, pipeline.tokens.thumbprint, nonce_bytes)
    try:
        evidence = await run_in_threadpool(service.attestor, report_data)
    except Exception as exc:
        log.exception("self-attestation failed")
        problem = f"the TEE did not produce a quote: {type(exc).__name__}"
        raise SelfAttestationError(problem) from None
    return _json(
        {
            "tee": evidence.tee,
            "quote": base64.b64encode(evidence.quote).decode(),
            "event_log": events_to_json(evidence.event_log),
            "report_data": report_data.hex(),
            "nonce": nonce_bytes.hex(),
            "signer": signer,
            "token_kid": pipeline.tokens.kid,
            "binding": "SHA-512('enclava/attestation-service/v1' || signer address || "
            "RFC 7638 thumbprint of the token key || nonce)",
        }
    )


@_router.get("/.well-known/jwks.json", response_model=JwksResponse, summary="Token keys")
async def jwks(service: Service) -> Response:
    return _json(service.pipeline.tokens.jwks)


@_router.get("/v1/signers", response_model=SignersResponse, summary="The EIP-712 signer")
async def signers(service: Service) -> Response:
    pipeline = service.pipeline
    domain = pipeline.default_domain
    return _json(
        {
            "address": pipeline.signer.address,
            "verdict_type": VERDICT_TYPE,
            "domain": None if domain is None else domain.to_dict(),
            "token_kid": pipeline.tokens.kid,
        }
    )


@_router.get("/v1/policies", response_model=PoliciesResponse, summary="Named policies")
async def policies(service: Service) -> Response:
    policy_set = service.pipeline.policies
    entries = [
        {
            "name": name,
            "default": name == policy_set.default,
            "sha256": chosen.sha256,
            "relaxations": list(chosen.policy.relaxations),
            "policy": policy_to_dict(chosen.policy),
        }
        for name, chosen in policy_set.items()
    ]
    return _json({"policies": entries, "inline_allowed": policy_set.allow_inline})


@_router.get("/healthz", response_model=HealthResponse, summary="Liveness, collateral state")
async def healthz(service: Service) -> Response:
    now = service.clock()
    collateral = [
        {
            "upstream": s.upstream,
            "tee": s.key.tee,
            "fmspc": s.key.fmspc,
            "ca": s.key.ca,
            "state": s.state,
            "next_update": s.next_update.isoformat(),
            "last_error": s.last_error,
        }
        for s in service.provider.status(now)
    ]
    return _json(
        {"status": "ok", "verifier_version": service.pipeline.version, "collateral": collateral}
    )


@_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
    summary="Prometheus metrics",
)
async def metrics(service: Service) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
