"""Fixtures for the attestation service: settings over the real samples, a pinned clock, a
simulated TDX worker, and httpx clients against the app (in process, or a live uvicorn)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from attestation.eventlog import RuntimeEvent, agent_event, events_to_json
from attestation.service import (
    ServiceKeys,
    ServiceSettings,
    TrustDomain,
    create_app,
    simulator_domain,
)
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx
from tests.samples import SAMPLES

AGENT_DIGEST = hashlib.sha384(b"echo agent bundle").digest()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Clock:
    """A clock tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def settings(**overrides: Any) -> ServiceSettings:
    """Offline collateral from the samples folder, no disk cache, no background refresh."""
    values: dict[str, Any] = {
        "collateral_mode": "offline",
        "offline_dir": SAMPLES,
        "cache_dir": None,
        "refresh_interval_seconds": 0,
        **overrides,
    }
    return ServiceSettings(**values)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="session")
def service_keys() -> ServiceKeys:
    return ServiceKeys.generate()


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


@dataclass
class SimWorker:
    """A worker on a simulated TDX: keys bound to a nonce in REPORTDATA, one agent measured."""

    sim: SimulatedTdx
    keys: EnclaveKeys
    nonce: bytes
    quote: bytes
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def domain(self) -> TrustDomain:
        return simulator_domain(self.sim)

    def request(self, **extra: Any) -> dict[str, Any]:
        return {
            "quote": b64(self.quote),
            "event_log": self.events,
            "binding": {
                "address": self.keys.address,
                "x25519_public": self.keys.x25519_public.hex(),
                "nonce": self.nonce.hex(),
            },
            "policy": "dev",
            **extra,
        }


def make_sim_worker(now: datetime, *extra_events: RuntimeEvent) -> SimWorker:
    sim = SimulatedTdx(now=now)
    sim.extend_rtmr(agent_event("echo", "0.1.0", AGENT_DIGEST))
    for event in extra_events:
        sim.extend_rtmr(event)
    keys = EnclaveKeys.generate()
    nonce = secrets.token_bytes(32)
    quote = sim.quote(keys.report_data(nonce))
    return SimWorker(sim, keys, nonce, quote, events_to_json(sim.event_log()))


@pytest.fixture
def real_now() -> datetime:
    return datetime.fromtimestamp(int(time.time()), UTC)


@pytest.fixture
def sim_worker(real_now: datetime) -> SimWorker:
    return make_sim_worker(real_now)


@pytest.fixture
async def dev_client(
    sim_worker: SimWorker, service_keys: ServiceKeys, real_now: datetime
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings(dev=True),
        signing=service_keys,
        dev_domains=[sim_worker.domain],
        clock=Clock(real_now),
    )
    async with client_for(app) as client:
        yield client


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server


@pytest.fixture
def live(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """Serves the app the test's `live_app` fixture builds with uvicorn on 127.0.0.1."""
    app: FastAPI = request.getfixturevalue("live_app")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield LiveServer(f"http://127.0.0.1:{sock.getsockname()[1]}", server)
    server.should_exit = True
    thread.join(10)
    sock.close()
