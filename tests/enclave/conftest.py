"""Fixtures for the gateway tests: real agents (loaded once), a simulated TDX worker with its
gateway app, in-process transports (plain and tampering) and a live uvicorn server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agents.builtin import builtin_bundle
from agents.bundle import Manifest, Measurement
from agents.runtime import AgentRuntime, Reply
from attestation import Policy
from enclava.devstack import serve_in_thread
from enclave.gateway import GatewayLimits, ServedAgent, create_app, measure_agents_into
from enclave.gateway_client import GatewayClient, VerifiedGateway
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx

NOW = datetime(2026, 11, 25, tzinfo=UTC)
CHAIN_ID = 31337
SIM_POLICY = Policy(allow_simulated=True)
SUM_BUNDLE = Path(__file__).parents[2] / "examples" / "sum-agent"


@pytest.fixture(scope="session")
def sum_agent() -> Iterator[AgentRuntime]:
    with AgentRuntime.load(SUM_BUNDLE) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def embed_agent() -> Iterator[AgentRuntime]:
    with AgentRuntime.load(builtin_bundle("embed")) as runtime:
        yield runtime


class AsgiTransport(httpx.BaseTransport):
    """A synchronous httpx transport into an ASGI app (one event loop per request)."""

    def __init__(self, app: FastAPI) -> None:
        self._inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return asyncio.run(send())


class TamperingTransport(httpx.BaseTransport):
    """Serves the app's answers, rewritten by `tamper(request, body)` (a relay in the middle)."""

    def __init__(self, inner: httpx.BaseTransport, tamper: Callable[[httpx.Request, bytes], bytes]):
        self._inner = inner
        self._tamper = tamper

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = self._tamper(request, response.read())
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(response.status_code, headers=headers, content=body)


class GatedAgent:
    """A served agent that waits for `release` before answering (wraps a real runtime)."""

    def __init__(self, inner: AgentRuntime) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @property
    def manifest(self) -> Manifest:
        return self.inner.manifest

    @property
    def measurement(self) -> Measurement:
        return self.inner.measurement

    @property
    def programs_digest(self) -> str:
        return self.inner.programs_digest

    def program_digests(self) -> dict[str, str]:
        return self.inner.program_digests()

    async def ainvoke(self, request: bytes | str | Mapping[str, Any]) -> Reply:
        self.entered.set()
        await self.release.wait()
        return await self.inner.ainvoke(request)


@dataclass
class Worker:
    """A simulated TDX worker serving `agents` through its gateway, and a client wired to it."""

    tee: SimulatedTdx
    keys: EnclaveKeys
    app: FastAPI
    transport: httpx.BaseTransport

    def client(self, transport: httpx.BaseTransport | None = None) -> GatewayClient:
        return GatewayClient("http://gateway", transport=transport or self.transport)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url="http://gateway", transport=self.transport)

    def verify(
        self,
        client: GatewayClient | None = None,
        *,
        expected: bytes | None = None,
        policy: Policy = SIM_POLICY,
    ) -> VerifiedGateway:
        nonce = bytes(range(32))
        client = client or self.client()
        return client.verify_attestation(
            client.attest(nonce),
            nonce,
            collateral=self.tee.collateral(now=NOW),
            now=NOW,
            trust_anchor=self.tee.trust_anchor,
            policy=policy,
            expected_measurement=expected,
        )


def start_worker(agents: Mapping[str, ServedAgent], limits: GatewayLimits | None = None) -> Worker:
    tee = SimulatedTdx(now=NOW)
    keys = EnclaveKeys.generate()
    measure_agents_into(tee, agents)
    limits = limits or GatewayLimits()
    app = create_app(tee=tee, keys=keys, agents=agents, chain_id=CHAIN_ID, limits=limits)
    return Worker(tee, keys, app, AsgiTransport(app))


@pytest.fixture
def worker(sum_agent: AgentRuntime) -> Worker:
    return start_worker({"sum": sum_agent})


@pytest.fixture(scope="module")
def embed_worker(sum_agent: AgentRuntime, embed_agent: AgentRuntime) -> Worker:
    return start_worker({"embed": embed_agent, "sum": sum_agent})


def live_server(app: FastAPI, *, deadline_s: float = 10.0) -> ContextManager[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    return serve_in_thread(app, deadline_s=deadline_s, lifespan="off")
