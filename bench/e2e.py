"""End to end: `embed` through the worker's HTTP gateway vs. in process, and on-chain latency.

Part 1 (HTTP). The built-in `embed` bundle is loaded here for the in-process baseline, and a
gateway over it runs as `enclava gateway serve --agent embed --backend sim` in its own process on
127.0.0.1 (as for any real caller: never the worker's process, so no shared interpreter lock).
For batch 1 (one text) and batch 32 (32 texts of ~128 tokens) the same input is sent, interleaved
round by round, three ways:

* in process: `AgentRuntime.invoke({"input": texts})`;
* HTTP plain: `GatewayClient.invoke(..., encrypt=False)` — JSON POST, signed answer verified;
* HTTP sealed: `GatewayClient.invoke(..., encrypt=True)` — HPKE both ways, signature verified,
  after one attestation (`attest` + `verify_attestation`).

Each figure is over `--rounds` calls; overhead ratio = HTTP median / in-process median, overhead
ms = HTTP median - in-process median. Those two compare model runs in two processes, whose times
differ by more than the gateway costs at batch 1; so the gateway also reports the agent's share
of each call (`Server-Timing: agent;dur=`), and "own ms" is the median of (HTTP time - agent
time) per call: what the gateway itself adds (HTTP, JSON, signing, HPKE, the client's checks).

Part 2 (chain). Anvil with `--block-time 1` (1-second blocks), a `DevStack` against it (its
`rpc_url`, agent `embed` only: attestation service, registration, agent contract, worker loop),
then `--chain-requests` requests from a dev account, one at a time. Latency = the Fulfilled event's
block - the request's block (p50/p95), and seconds from sending the request to seeing Fulfilled.

    python bench/e2e.py [--rounds N] [--chain-requests N] [--skip-chain] [--json]

Goals (from the issue): overhead ≤ 5% at batch 32, ≤ 3 ms absolute at batch 1; on-chain latency
≤ 2 blocks at p95. Nothing here asserts them; `--json` makes the last line one JSON object with
`overhead_ratio_b32`, `overhead_ms_b1`, `gateway_own_ms_b1`, `chain_latency_blocks_p95` and the
rest.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import jax

from agents.builtin import builtin_bundle
from agents.runtime import AgentRuntime
from attestation import Policy
from contracts.anvil import AnvilNode
from enclava.devstack import DevStack
from enclave.gateway_client import GatewayClient
from enclave.tee.sim import SimulatedTdx

BATCHES = (1, 32)
SEQ = 128
WORDS = (
    "the a of and to in is was for on with as by at from that this it be are were have has had "
    "not but or an which one all their there been more when who will would can time people year "
    "new first day work life world house water school city state country government music money "
    "family night light power river mountain market story history science art game team fire "
    "earth garden window table paper letter question answer morning evening summer winter spring "
    "road bridge train ship island forest field village king"
)


def texts(count: int, seed: int = 7) -> list[str]:
    """``count`` texts of ~``SEQ`` tokens (common, mostly single-token words; fixed seed)."""
    rng = random.Random(seed)
    words = WORDS.split()
    return [" ".join(rng.choice(words) for _ in range(SEQ - 2)) for _ in range(count)]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def summary(seconds: list[float], batch: int) -> dict[str, float]:
    p50 = statistics.median(seconds)
    return {
        "p50_ms": p50 * 1e3,
        "p99_ms": percentile(seconds, 99) * 1e3,
        "sent_per_s": batch / p50,
    }


# ------------------------------------------------------------------------- part 1: HTTP


@contextmanager
def gateway_process(state: Path) -> Iterator[str]:
    """`enclava gateway serve --agent embed` on the simulated TDX of `state`, in its own process
    (a caller never shares the worker's process, nor its interpreter lock); yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [
        str(Path(sys.executable).with_name("enclava")), "gateway", "serve", "--agent", "embed",
        "--backend", "sim", "--state", str(state), "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + 180
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > give_up:
                err = server.stderr.read().decode()[-2000:] if server.stderr else ""
                raise RuntimeError(f"the gateway did not start: {err}")
            time.sleep(0.2)  # polling a starting process, with a deadline
        yield url
    finally:
        server.terminate()
        server.wait(30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class TimingTransport(httpx.HTTPTransport):
    """Keeps the agent's share of the last answer (`Server-Timing: agent;dur=MS`)."""

    agent_ms: float = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        timing = response.headers.get("server-timing", "")
        if timing.startswith("agent;dur="):
            self.agent_ms = float(timing.removeprefix("agent;dur="))
        return response


def measure_http(runtime: AgentRuntime, rounds: int, state: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    transport = TimingTransport()
    with gateway_process(state) as url, GatewayClient(url, transport=transport) as client:
        now = datetime.now(UTC)
        tee = SimulatedTdx(state / "sim", now=now)  # the gateway's machine: same state dir
        nonce = secrets.token_bytes(32)
        started = time.perf_counter()
        verified = client.verify_attestation(
            client.attest(nonce),
            nonce,
            collateral=tee.collateral(now=now),
            now=now,
            trust_anchor=tee.trust_anchor,
            policy=Policy(allow_simulated=True),
            expected_measurement=None,
        )
        results["attest_ms"] = (time.perf_counter() - started) * 1e3
        all_texts = texts(max(BATCHES))
        for batch in BATCHES:
            value = {"input": all_texts[:batch]}
            expected = runtime.invoke(value).body
            for encrypt in (False, True):  # warm-up; and the answers must be the same
                got = client.invoke(verified, "embed", value, encrypt=encrypt).body
                assert got == expected, "the gateway's answer differs from the in-process one"
            sides: dict[str, Callable[[], Any]] = {
                "inproc": functools.partial(runtime.invoke, value),
                "http": functools.partial(client.invoke, verified, "embed", value, encrypt=False),
                "sealed": functools.partial(client.invoke, verified, "embed", value),
            }
            times: dict[str, list[float]] = {side: [] for side in sides}
            own: dict[str, list[float]] = {"http": [], "sealed": []}  # total - agent, per call
            for _ in range(rounds):
                for side, call in sides.items():
                    times[side].append(timed(call))
                    if side in own:
                        own[side].append(times[side][-1] * 1e3 - transport.agent_ms)
            row = {side: summary(t, batch) for side, t in times.items()}
            base = row["inproc"]["p50_ms"]
            for side in ("http", "sealed"):
                suffix = "" if side == "http" else "_sealed"
                results[f"overhead_ratio_b{batch}{suffix}"] = row[side]["p50_ms"] / base
                results[f"overhead_ms_b{batch}{suffix}"] = row[side]["p50_ms"] - base
                results[f"gateway_own_ms_b{batch}{suffix}"] = statistics.median(own[side])
            for side, figures in row.items():
                for key, val in figures.items():
                    results[f"{side}_b{batch}_{key}"] = val
            print(f"batch {batch:>2} (seq ~{SEQ}), {rounds} calls each, interleaved:")
            print(
                f"  {'path':<12} {'p50 ms':>9} {'p99 ms':>9} {'sent/s':>9} {'ratio':>7} {'+ms':>8}"
                f" {'own ms':>8}"
            )
            for side, figures in row.items():
                ratio = figures["p50_ms"] / base
                mine = f"{statistics.median(own[side]):8.2f}" if side in own else f"{'':>8}"
                print(
                    f"  {side:<12} {figures['p50_ms']:9.2f} {figures['p99_ms']:9.2f} "
                    f"{figures['sent_per_s']:9.1f} {ratio:7.3f} {figures['p50_ms'] - base:8.2f} "
                    f"{mine}",
                    flush=True,
                )
    return results


# ------------------------------------------------------------------------- part 2: chain


def measure_chain(requests: int, state: Path) -> dict[str, Any]:
    value = {"input": texts(1)}
    data = json.dumps(value).encode()
    blocks: list[int] = []
    seconds: list[float] = []
    started = time.perf_counter()
    with (
        AnvilNode(block_time=1) as node,
        DevStack(state, rpc_url=node.url, agents=["embed"]) as stack,
    ):
        setup_s = time.perf_counter() - started
        agent = stack.agents["embed"]
        contract = agent.contract
        fulfilled = contract.contract.events.Fulfilled()
        for _ in range(requests):
            sent = time.perf_counter()
            with stack.chain_lock:
                request = contract.request(stack.caller, data)
            give_up = time.monotonic() + 60
            while True:
                with stack.chain_lock:
                    logs = fulfilled.get_logs(from_block=request.block_number)
                events = [e for e in logs if int(e["args"]["id"]) == request.id]
                if events:
                    break
                if time.monotonic() > give_up:
                    raise RuntimeError(f"request {request.id} not fulfilled in 60 s")
                time.sleep(0.05)
            seconds.append(time.perf_counter() - sent)
            blocks.append(int(events[0]["blockNumber"]) - request.block_number)
        errors = stack.worker_errors
    print(f"chain: Anvil --block-time 1, DevStack ready in {setup_s:.1f} s, {requests} requests:")
    print(
        f"  blocks request→fulfilled: p50 {statistics.median(blocks):.1f}  "
        f"p95 {percentile([float(b) for b in blocks], 95):.0f}  max {max(blocks)}  "
        f"(all: {blocks})"
    )
    print(
        f"  seconds send→fulfilled seen: p50 {statistics.median(seconds):.2f}  "
        f"p95 {percentile(seconds, 95):.2f}"
    )
    if errors:
        print(f"  worker errors: {errors[:3]}")
    return {
        "chain_latency_blocks_p50": statistics.median(blocks),
        "chain_latency_blocks_p95": percentile([float(b) for b in blocks], 95),
        "chain_latency_blocks_max": max(blocks),
        "chain_latency_s_p50": statistics.median(seconds),
        "chain_latency_s_p95": percentile(seconds, 95),
        "chain_requests": requests,
        "chain_setup_s": setup_s,
        "chain_worker_errors": len(errors),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30, help="calls per path and batch")
    parser.add_argument("--chain-requests", type=int, default=20, help="on-chain requests")
    parser.add_argument("--skip-chain", action="store_true", help="HTTP part only")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    device_name = f"{device.platform}:{device.device_kind}"
    load = os.getloadavg()
    print(f"python {platform.python_version()}  device {device_name}  cpus {os.cpu_count()}")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="enclava-e2e-") as tmp:
        with AgentRuntime.load(builtin_bundle("embed")) as runtime:
            results["load_s"] = time.perf_counter() - started
            results.update(measure_http(runtime, args.rounds, Path(tmp)))
        if args.skip_chain:
            results["chain_latency_blocks_p95"] = None
            print("chain: not measured (--skip-chain)")
        else:
            results.update(measure_chain(args.chain_requests, Path(tmp) / "stack"))
    p95 = results["chain_latency_blocks_p95"]
    goals = {
        "goal_b32_ratio_le_1_05": results["overhead_ratio_b32"] <= 1.05,
        "goal_b1_overhead_le_3ms": results["overhead_ms_b1"] <= 3.0,
        "goal_chain_p95_le_2_blocks": None if p95 is None else p95 <= 2,
    }
    chain = "not measured" if p95 is None else f"{p95:.0f} blocks (≤ 2) "
    if p95 is not None:
        chain += "met" if goals["goal_chain_p95_le_2_blocks"] else "MISSED"
    print(
        f"goals: b32 overhead {100 * (results['overhead_ratio_b32'] - 1):+.1f}% (≤ 5%) "
        f"{'met' if goals['goal_b32_ratio_le_1_05'] else 'MISSED'}; "
        f"b1 overhead {results['overhead_ms_b1']:.2f} ms (≤ 3 ms) "
        f"{'met' if goals['goal_b1_overhead_le_3ms'] else 'MISSED'}; chain p95 {chain}"
    )
    if args.json:
        end_load = os.getloadavg()
        results.update(goals)
        results.update(
            device=device_name,
            cpus=os.cpu_count(),
            load_avg_start=list(load),
            load_avg_end=list(end_load),
            rounds=args.rounds,
            seq=SEQ,
        )
        print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
