"""Attestation service throughput and latency over HTTP, next to the verifier in process.

One run:

1. starts the service (`attestation.service`, uvicorn with httptools + uvloop, `--workers`
   forked processes on one socket) on a free port of 127.0.0.1, in a subprocess, with collateral
   from the samples folder (offline mode) and its clock pinned to the samples' time
   (2025-06-20), plus a simulated TDX machine (dev mode) for the full registration path;
2. warms it (every worker verifies every request kind, so collateral and verifier caches are
   warm), checking each answer;
3. drives it with httpx async clients (one `AsyncClient`, one keep-alive connection, per
   simulated client) at each `--clients` level, `--requests` requests per level, cycling
   through the mix:
     * TDX v4 sample        accepted under the default policy: verdict + ES256 token
     * SGX v3 sample        rejected by the default policy (ConfigurationAndSWHardeningNeeded)
     * simulated TDX worker accepted under `dev`: event log replayed, keys + nonce bound,
                            token and EIP-712 verdict signed
4. measures, in this process and without HTTP, on the same mix: `QuoteVerifier.verify` (warm;
   the verifier's floor) and the service's whole pipeline (parse, verify, policy, event log,
   token, EIP-712 verdict, JSON). What HTTP adds is uvicorn, the client and the OS.

Throughput = requests / wall time of the level; latency = per request, as the client sees it
(p50 / p99). CPU per request (server processes, and this client process) is read from /proc.
Client and server share the machine's cores: on a 2-core box the load generator's own CPU time
is part of what limits throughput. Nothing here asserts a time.

    python bench/service.py [--requests N] [--clients 32,128] [--workers N] [--json]

`--json` makes the last line one JSON object: `rps_32`, `p50_ms_32`, `p99_ms_32`, `rps_128`,
`p99_ms_128`, ... and the in-process figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

try:  # httpcore imports sniffio on every request; where it is absent, that import fails each
    import sniffio  # noqa: F401  # time after a sys.path scan (~0.2 ms): cache the failure once
except ImportError:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

import httpx
import uvloop
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attestation import QuoteVerifier, TrustAnchor  # noqa: E402
from attestation.eventlog import agent_event, events_to_json  # noqa: E402
from attestation.service import (  # noqa: E402
    ServiceKeys,
    ServiceSettings,
    create_app,
    simulator_domain,
)
from attestation.service.server import serve  # noqa: E402
from tests.samples import SAMPLES, SGX_V3, TDX_V4  # noqa: E402

AT = TDX_V4.now
CHAIN_ID, VERIFIER = 31337, "0x" + "5a" * 20


# --- the server (subprocess) -----------------------------------------------------------------


def service_settings(state: Path, port: int = 0, workers: int = 1) -> ServiceSettings:
    return ServiceSettings(
        port=port,
        workers=workers,
        dev=True,
        collateral_mode="offline",
        offline_dir=SAMPLES,
        cache_dir=None,
        key_file=state / "keys.json",
        refresh_interval_seconds=0,
        eip712_chain_id=CHAIN_ID,
        eip712_verifier=VERIFIER,
    )


def build_app(settings: ServiceSettings, state: Path) -> FastAPI:
    """The service as measured: clock pinned to the samples' time, plus the simulator's domain
    (dev mode)."""
    from enclave.tee.sim import SimulatedTdx

    sim = SimulatedTdx(state / "sim", now=AT)
    keys = ServiceKeys.load(state / "keys.json")
    return create_app(settings, signing=keys, dev_domains=[simulator_domain(sim)], clock=lambda: AT)


def run_server(port: int, workers: int, state: Path) -> None:
    settings = service_settings(state, port, workers)
    serve(settings, lambda: build_app(settings, state))


# --- the load ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    body: bytes
    accepted: bool
    signed: bool


def request_mix(state: Path) -> tuple[list[Kind], list[bytes]]:
    """The request bodies of the mix, and their raw quotes (for the in-process baseline)."""
    from enclave.keys import EnclaveKeys
    from enclave.tee.sim import SimulatedTdx

    sim = SimulatedTdx(state / "sim", now=AT)
    sim.extend_rtmr(agent_event("echo", "0.1.0", bytes(range(48))))
    keys = EnclaveKeys.generate()
    nonce = secrets.token_bytes(32)
    sim_quote = sim.quote(keys.report_data(nonce))
    sim_request = {
        "quote": base64.b64encode(sim_quote).decode(),
        "event_log": events_to_json(sim.event_log()),
        "binding": {
            "address": keys.address,
            "x25519_public": keys.x25519_public.hex(),
            "nonce": nonce.hex(),
        },
        "policy": "dev",
    }

    def body(doc: dict[str, Any]) -> bytes:
        return json.dumps(doc).encode()

    kinds = [
        Kind("tdx_v4", body({"quote": base64.b64encode(TDX_V4.quote).decode()}), True, False),
        Kind("sgx_v3", body({"quote": base64.b64encode(SGX_V3.quote).decode()}), False, False),
        Kind("sim_worker", body(sim_request), True, True),
    ]
    return kinds, [TDX_V4.quote, SGX_V3.quote, sim_quote]


HEADERS = {"content-type": "application/json"}


def check(kind: Kind, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise SystemExit(f"{kind.name}: HTTP {response.status_code}: {response.text[:300]}")
    answer = response.json()
    if answer["accepted"] != kind.accepted or (answer["signed_verdict"] is not None) != kind.signed:
        raise SystemExit(f"{kind.name}: unexpected answer {answer['reasons']}")


async def warm(url: str, kinds: list[Kind], workers: int) -> None:
    """Enough connections and requests that every worker process has served every kind."""
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for _ in range(8 * workers)]
    try:
        for _ in range(5):
            for kind in kinds:
                responses = await asyncio.gather(
                    *(c.post("/v1/verify", content=kind.body, headers=HEADERS) for c in clients)
                )
                for response in responses:
                    check(kind, response)
    finally:
        for c in clients:
            await c.aclose()


@dataclass
class Level:
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


async def drive(
    url: str, kinds: list[Kind], clients: int, requests: int, server_cpu: Callable[[], float]
) -> Level:
    pool = [
        httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1))
        for _ in range(clients)
    ]
    for c in pool:  # open every connection before timing
        check(kinds[0], await c.post("/v1/verify", content=kinds[0].body, headers=HEADERS))
    latencies: list[float] = []
    tickets = iter(range(requests))

    async def client(c: httpx.AsyncClient) -> None:
        for n in tickets:
            kind = kinds[n % len(kinds)]
            start = time.perf_counter()
            response = await c.post("/v1/verify", content=kind.body, headers=HEADERS)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")

    gc.collect()
    gc.freeze()  # the load generator's own collections must not show up as server latency
    cpu0, own0 = server_cpu(), time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in pool))
    seconds = time.perf_counter() - start
    cpu1, own1 = server_cpu(), time.process_time()
    for c in pool:
        await c.aclose()
    return Level(clients, requests, seconds, latencies, cpu1 - cpu0, own1 - own0)


# --- helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree_cpu(root: int) -> float:
    """User + system CPU seconds of `root` and its children (the forked workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the service exited with status {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("the service did not become ready within 60 s")


Figures = tuple[float, float, float]  # operations/s, p50 us, p99 us


def timed(calls: list[Callable[[], object]], rounds: int) -> Figures:
    """The calls in turn on one thread, after one untimed round."""
    for call in calls:
        call()
    gc.collect()
    times = []
    for n in range(rounds):
        call = calls[n % len(calls)]
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return (
        len(times) / sum(times),
        times[len(times) // 2] * 1e6,
        times[int(0.99 * len(times))] * 1e6,
    )


@dataclass(frozen=True)
class InProcess:
    verify: Figures
    pipeline: Figures


def in_process(state: Path, kinds: list[Kind], quotes: list[bytes], rounds: int) -> InProcess:
    """The same mix without HTTP: `QuoteVerifier.verify` alone (warm: the verifier's floor),
    and the service's whole pipeline (parse, verify, policy, event log, token, EIP-712, JSON)."""
    from enclave.tee.sim import SimulatedTdx

    sim = SimulatedTdx(state / "sim", now=AT)
    intel, simulated = QuoteVerifier(TrustAnchor.intel()), QuoteVerifier(sim.trust_anchor)
    cases = [
        (intel, quotes[0], TDX_V4.collateral),
        (intel, quotes[1], SGX_V3.collateral),
        (simulated, quotes[2], sim.collateral(now=AT)),
    ]
    verify = timed([partial(v.verify, q, c, now=AT) for v, q, c in cases], rounds)
    service = build_app(service_settings(state), state).state.service
    pipeline, provider = service.pipeline, service.provider

    def answer(body: bytes) -> bytes:
        prepared = pipeline.prepare(pipeline.parse(body))
        found = provider.lookup(prepared.route, AT)
        if found.collateral is None:
            found = provider.obtain(prepared.route, AT)
        return json.dumps(pipeline.answer(prepared, found, AT)[1]).encode()

    return InProcess(verify, timed([partial(answer, kind.body) for kind in kinds], rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests per level")
    parser.add_argument("--clients", default="32,128", help="concurrency levels")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "STATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(int(args.serve[0]), args.workers, Path(args.serve[1]))
        return
    levels = [int(c) for c in args.clients.split(",")]
    args.load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        ServiceKeys.generate().save(state / "keys.json")
        kinds, quotes = request_mix(state)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, __file__, "--workers", str(args.workers)]
        server = subprocess.Popen([*command, "--serve", str(port), str(state)])
        try:
            wait_ready(url, server)
            results = uvloop.run(run_levels(url, kinds, levels, args, server.pid))
        finally:
            server.terminate()
            server.wait(30)
        inproc = in_process(state, kinds, quotes, 6000)
    report(results, inproc, args)


async def run_levels(
    url: str, kinds: list[Kind], levels: list[int], args: argparse.Namespace, pid: int
) -> list[Level]:
    await warm(url, kinds, args.workers)
    return [
        await drive(url, kinds, n, args.requests, lambda: process_tree_cpu(pid)) for n in levels
    ]


def report(levels: list[Level], inproc: InProcess, args: argparse.Namespace) -> None:
    rps, p50_us, p99_us = inproc.verify
    pipe_rps, pipe_p50_us, pipe_p99_us = inproc.pipeline
    print(
        f"attestation service over HTTP: {args.workers} worker process(es), "
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"load average before the run {args.load_before:.2f} (other work on this machine)"
    )
    print(
        "mix: TDX v4 (accepted, token), SGX v3 (rejected), simulated worker "
        "(event log + binding, token + EIP-712 verdict), in turn"
    )
    print(
        f"{'clients':>8} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server CPU ms/req':>18} {'client CPU ms/req':>18}"
    )
    for lv in levels:
        print(
            f"{lv.clients:>8} {lv.requests:>9} {lv.rps:>8.0f} {lv.percentile_ms(0.5):>8.1f} "
            f"{lv.percentile_ms(0.99):>8.1f} {lv.server_cpu / lv.requests * 1e3:>18.3f} "
            f"{lv.client_cpu / lv.requests * 1e3:>18.3f}"
        )
    print(
        f"in process, same mix, one thread: QuoteVerifier.verify (warm) {rps:,.0f}/s "
        f"(p50 {p50_us:.0f} us, p99 {p99_us:.0f} us); the whole service pipeline without HTTP "
        f"{pipe_rps:,.0f}/s (p50 {pipe_p50_us:.0f} us, p99 {pipe_p99_us:.0f} us)"
    )
    for lv in levels:
        print(
            f"HTTP at {lv.clients} clients: {lv.rps / rps:.2f}x the in-process verifier, "
            f"{lv.rps / pipe_rps:.2f}x the in-process pipeline"
        )
    goal = next((lv for lv in levels if lv.clients == 32), None)
    if goal is not None:
        met = goal.rps >= 1000 and goal.percentile_ms(0.99) <= 50
        print(f"goal (>= 1000 req/s and p99 <= 50 ms at 32 clients): {'met' if met else 'NOT met'}")
    if args.json:
        out: dict[str, Any] = {
            "workers": args.workers,
            "requests": args.requests,
            "cpus": os.cpu_count(),
            "load_before": round(args.load_before, 2),
            "inproc_rps": round(rps, 1),
            "inproc_p50_us": round(p50_us, 1),
            "inproc_p99_us": round(p99_us, 1),
            "pipeline_rps": round(pipe_rps, 1),
            "pipeline_p50_us": round(pipe_p50_us, 1),
            "pipeline_p99_us": round(pipe_p99_us, 1),
            "at": datetime.fromtimestamp(AT.timestamp(), UTC).isoformat(),
        }
        for lv in levels:
            n = lv.clients
            out[f"rps_{n}"] = round(lv.rps, 1)
            out[f"p50_ms_{n}"] = round(lv.percentile_ms(0.5), 2)
            out[f"p99_ms_{n}"] = round(lv.percentile_ms(0.99), 2)
            out[f"server_cpu_ms_per_req_{n}"] = round(lv.server_cpu / lv.requests * 1e3, 3)
            out[f"client_cpu_ms_per_req_{n}"] = round(lv.client_cpu / lv.requests * 1e3, 3)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
