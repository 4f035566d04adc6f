"""Scale-out: requests/s of N `enclava worker run` processes sharing one agent on one Anvil chain.

The workers coordinate through the chain only: each reads the registry's `WorkerRegistered`
events to learn its peers and answers the requests that rendezvous hashing assigns to it
(`enclave.worker.assignment`); nothing else connects them. Each worker is its own simulated TDX
machine (own state directory: sim machine, sealed keys, worker.db) and pays gas from an Anvil dev
account no other running worker uses (paused groups may share one); one attestation service in
this process trusts every machine's simulator root (one `simulator_domain` each), the way one
service trusts Intel's root for a fleet of real hosts.

One group of workers per N, each on its own registry and agent contract (so no other group's
workers are its peers), on machines of its own:

1. start the N workers (`--batch-size` small, so one worker needs many transactions), wait until
   each has registered and printed its boot summary, and pause them (SIGSTOP); none of this is
   timed. Every registration is mined before any burst, and a worker refreshes its peers right
   before it reads new requests, so no worker reads a burst with fewer than N peers;
2. `--repeat` passes; in each, every group in turn is resumed (SIGCONT), sent `--requests`
   requests as one burst (automine off, one `evm_mine`: every worker sees the whole load at
   once; the clock starts when the burst is mined), timed until the `Fulfilled` events close
   every request (rps = requests / seconds) and paused again. Passes interleave the groups, so
   a change in the machine's load (it is shared) hits every N alike; the median is reported.

Per-request work: the default agent `work` (`bench/data/work`) runs a fixed ~13 GFLOP of dense
layers per request. Each worker runs XLA on one thread (a worker stands for one host), so workers
add compute until this machine's cores run out; `--agent sum` is the trivial agent, where chain
round-trips (signing, RPC, receipts) are the whole cost. The table shows each worker's share of
the requests (from `Fulfilled.worker`), requests fulfilled more than once (must be 0), the
`closed elsewhere` fulfilments the workers' logs report (gas wasted on a lost race), worker CPU
milliseconds per request and how busy the whole machine was during the timed window (/proc/stat).

    python bench/scale.py [--requests 120] [--workers 1,2,4] [--block-time 0] [--agent work]
                          [--batch-size 2] [--poll-interval 0.2] [--repeat 3] [--json]

`--json` ends with one line `{"rps_1":..,"rps_2":..,"rps_4":..,"speedup_2":..,"speedup_4":..}`
(speedup = rps_N / rps of the first count, measured in the same run) plus the per-N details.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.bundle import measure
from attestation.service import ServiceKeys, ServiceSettings, create_app, simulator_domain
from attestation.token import agent_measurement_id
from contracts.anvil import AnvilNode
from contracts.chain import Chain, connect
from contracts.client import AgentClient, Transactor, create_agent, deploy
from enclava import config
from enclava.devstack import serve_in_thread
from enclave.tee.sim import SimulatedTdx

ROOT = Path(__file__).resolve().parents[1]
ENCLAVA = Path(sys.executable).with_name("enclava")
BUNDLES = {
    "work": ROOT / "bench" / "data" / "work",
    "sum": ROOT / "examples" / "sum-agent",
}
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PRICE = 10**12
FIRST_WORKER_ACCOUNT = 2  # Anvil dev accounts: 0 deploys, 1 calls, 2.. pay the workers' gas
_CLOSED = re.compile(r"closed elsewhere (\d+)")


def inputs_for(agent: str, count: int) -> list[bytes]:
    """`count` distinct valid inputs of the bench agent `agent`."""
    if agent == "work":
        return [json.dumps({"seed": i}).encode() for i in range(count)]
    return [json.dumps({"values": [i, i % 7, -3]}).encode() for i in range(count)]


@dataclass
class WorkerChild:
    """One `enclava worker run` child: its log and, once booted, its enclave address."""

    index: int
    process: subprocess.Popen[bytes]
    log: Path
    address: str | None = None

    def booted(self) -> bool:
        """Whether the boot summary (printed after registration) is in the log; raises if the
        process died first."""
        if self.address is None:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"worker"' in line:
                    self.address = str(json.loads(line)["worker"])
        if self.address is None and self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"worker {self.index} exited with {self.process.returncode}:\n{tail}"
            )
        return self.address is not None

    def closed_elsewhere(self) -> int:
        """Fulfilments this worker sent that another worker's had already closed (from its log)."""
        return sum(int(n) for n in _CLOSED.findall(self.log.read_text(errors="replace")))

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send `sig` (then SIGCONT, so that a paused worker acts on it) and wait for the exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.send_signal(signal.SIGCONT)
        self.process.wait(30)


@dataclass(frozen=True)
class Burst:
    """Requests sent together: their ids, the first block holding one, when they were mined
    (`time.perf_counter()`)."""

    ids: list[int]
    first_block: int
    mined_at: float


@dataclass
class Cluster:
    """One chain, one attestation service trusting `len(machines)` simulated machines (one state
    directory each), and the worker processes started on them."""

    chain: Chain
    tx: Transactor
    service_url: str
    signer: str
    machines: list[Path]
    workers: list[WorkerChild] = field(default_factory=list)

    def deploy_agent(self, bundle: Path, *, timeout_s: int = 3_600) -> AgentClient:
        """A fresh registry and an agent contract pinning `bundle`: no earlier worker is a peer."""
        owner = self.chain.dev_accounts()[0]
        deployment = deploy(self.tx, owner, [self.signer])
        return create_agent(
            self.tx, owner, deployment.factory, registry=deployment.registry, price=PRICE,
            measurement=agent_measurement_id(measure(bundle).digest), royalty_bps=0,
            timeout=timeout_s,
        )  # fmt: skip

    def start(self, index: int, agent: AgentClient, bundle: Path, *extra: str) -> WorkerChild:
        """Start worker `index` on machine `index` (XLA on one thread: one worker, one core).
        Its gas account is a dev account shared with workers `index ± 8`: callers must not run
        two of those at once (their nonces would collide)."""
        accounts = self.chain.dev_accounts()[FIRST_WORKER_ACCOUNT:]
        account = accounts[index % len(accounts)]
        args = [
            str(ENCLAVA), "worker", "run", "--rpc-url", self.chain.url, "--json",
            "--agent-contract", agent.address, "--bundle", str(bundle),
            "--attestation-service", self.service_url, "--backend", "sim",
            "--state", str(self.machines[index]),
            "--start-block", str(self.chain.w3.eth.block_number), *extra,
        ]  # fmt: skip
        env = {**os.environ, "ENCLAVA_PRIVATE_KEY": account.key.hex(), "XLA_FLAGS": ONE_THREAD}
        log = self.machines[index] / f"worker-{agent.address}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        worker = WorkerChild(index, process, log)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def burst(self, agent: AgentClient, inputs: Sequence[bytes], *, automine: bool) -> Burst:
        """Send one request per input and mine them together. `automine`: the node mines on
        each transaction (switched off for the burst); else some may land in an interval block
        before the `evm_mine` that starts the clock."""
        w3, caller = self.chain.w3, self.chain.dev_accounts()[1]
        rpc: Callable[[str, list[Any]], Any] = w3.provider.make_request  # type: ignore[assignment]
        if automine:
            rpc("evm_setAutomine", [False])
        try:
            nonce = w3.eth.get_transaction_count(caller.address, "pending")
            hashes = []
            for offset, data in enumerate(inputs):
                call: Any = agent.contract.functions.request(data)
                tx = call.build_transaction(
                    {"from": caller.address, "value": PRICE, "nonce": nonce + offset,
                     "chainId": self.chain.chain_id, "gas": 500_000}
                )  # fmt: skip
                hashes.append(
                    w3.eth.send_raw_transaction(caller.sign_transaction(tx).raw_transaction)
                )
            rpc("evm_mine", [])
            mined_at = time.perf_counter()
        finally:
            if automine:
                rpc("evm_setAutomine", [True])
        requested = agent.contract.events.Requested()
        ids, blocks = [], []
        for tx_hash in hashes:
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
            ids += [int(e["args"]["id"]) for e in requested.process_receipt(receipt)]
            blocks.append(int(receipt["blockNumber"]))
        return Burst(ids, min(blocks), mined_at)


def fulfilments(agent: AgentClient, ids: set[int], from_block: int = 0) -> dict[int, list[str]]:
    """For each of `ids` fulfilled so far, the workers whose fulfilment closed it (event order)."""
    seen: dict[int, list[str]] = {}
    for event in agent.contract.events.Fulfilled().get_logs(from_block=from_block):
        request_id = int(event["args"]["id"])
        if request_id in ids:
            seen.setdefault(request_id, []).append(str(event["args"]["worker"]))
    return seen


@contextmanager
def cluster(chain: Chain, root: Path, machines: int) -> Iterator[Cluster]:
    """`machines` simulated TDX machines under `root` and a dev attestation service trusting
    each one's root (the service runs in a thread of this process)."""
    now = datetime.now(UTC)
    dirs = [root / f"machine-{i}" for i in range(machines)]
    sims = [SimulatedTdx(config.sim_state_dir(d), now=now) for d in dirs]
    domains = [simulator_domain(sim, label=f"sim-{i}") for i, sim in enumerate(sims)]
    settings = ServiceSettings(dev=True, cache_dir=None, refresh_interval_seconds=0)
    keys = ServiceKeys.generate()
    with serve_in_thread(create_app(settings, signing=keys, dev_domains=domains)) as url:
        site = Cluster(chain, Transactor(chain), url, keys.eip712.address, dirs)
        try:
            yield site
        finally:
            site.stop_all()


def wait_until(condition: Callable[[], bool], deadline_s: float, what: str, step_s: float) -> None:
    """Poll `condition` every `step_s` until true; `TimeoutError` after `deadline_s`."""
    give_up = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError(f"{what}: not within {deadline_s} s")
        time.sleep(step_s)


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (/proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Group:
    """The N workers of one round, on their own agent contract and registry."""

    agent: AgentClient
    workers: list[WorkerChild]

    def signal(self, sig: signal.Signals) -> None:
        for worker in self.workers:
            worker.process.send_signal(sig)


def boot_group(site: Cluster, count: int, first: int, args: argparse.Namespace) -> Group:
    """Start `count` workers on machines `first`.. for a fresh agent, wait until every one has
    registered, then pause them (SIGSTOP) so they cost nothing while other groups run."""
    bundle = BUNDLES[args.agent]
    agent = site.deploy_agent(bundle)
    extra = ["--batch-size", str(args.batch_size), "--poll-interval", str(args.poll_interval)]
    extra += ["--grace", "600"]  # nobody takes over: each request goes to its assignee
    workers = [site.start(first + i, agent, bundle, *extra) for i in range(count)]
    wait_until(lambda: all(w.booted() for w in workers), 300, "workers boot", 0.2)
    group = Group(agent, workers)
    group.signal(signal.SIGSTOP)
    return group


def measure_burst(site: Cluster, group: Group, args: argparse.Namespace) -> dict[str, Any]:
    """Resume `group`, fire the burst, time it until every request is closed, pause again."""
    group.signal(signal.SIGCONT)
    try:
        pids = [w.process.pid for w in group.workers]
        cpu_before, ticks_before = sum(map(_cpu_seconds, pids)), _busy_ticks()
        inputs = inputs_for(args.agent, args.requests)
        burst = site.burst(group.agent, inputs, automine=not args.block_time)
        wanted = set(burst.ids)
        wait_until(
            lambda: len(fulfilments(group.agent, wanted, burst.first_block)) == len(wanted),
            600, "every request fulfilled", 0.05,
        )  # fmt: skip
        seconds = time.perf_counter() - burst.mined_at
        ticks_after, cpu = _busy_ticks(), sum(map(_cpu_seconds, pids)) - cpu_before
    finally:
        group.signal(signal.SIGSTOP)
    closed = fulfilments(group.agent, wanted, burst.first_block)
    return {
        "rps": len(wanted) / seconds,
        "seconds": seconds,
        "fulfilled_by": Counter(workers[0] for workers in closed.values()),
        "duplicates": sum(len(workers) - 1 for workers in closed.values()),
        "cpu_ms_per_request": 1e3 * cpu / len(wanted),
        "busy": (ticks_after[0] - ticks_before[0]) / max(1, ticks_after[1] - ticks_before[1]),
    }


def summarise(group: Group, bursts: list[dict[str, Any]]) -> dict[str, Any]:
    """One row: medians over the repeats, the split and duplicates summed over them."""
    names = {w.address: f"w{i}" for i, w in enumerate(group.workers)}
    split: Counter[str] = Counter()
    for burst in bursts:
        split.update({names.get(a, a): n for a, n in burst["fulfilled_by"].items()})
    return {
        "workers": len(group.workers),
        "rps": statistics.median(b["rps"] for b in bursts),
        "rps_each": [b["rps"] for b in bursts],
        "seconds": statistics.median(b["seconds"] for b in bursts),
        "split": dict(sorted(split.items())),
        "duplicates": sum(b["duplicates"] for b in bursts),
        "closed_elsewhere": sum(w.closed_elsewhere() for w in group.workers),
        "worker_cpu_ms_per_request": statistics.median(b["cpu_ms_per_request"] for b in bursts),
        "machine_busy": statistics.median(b["busy"] for b in bursts),
    }


HEADER = (
    f"{'N':>3} {'rps':>8} {'speedup':>8} {'seconds':>8} {'dup':>4} {'lost race':>9} "
    f"{'cpu ms/req':>10} {'busy':>5}  split (all repeats)"
)


def print_row(r: dict[str, Any], base_rps: float) -> None:
    split = " ".join(f"{name}:{n}" for name, n in r["split"].items())
    print(
        f"{r['workers']:>3} {r['rps']:8.1f} {r['rps'] / base_rps:8.2f} {r['seconds']:8.2f} "
        f"{r['duplicates']:>4} {r['closed_elsewhere']:>9} "
        f"{r['worker_cpu_ms_per_request']:10.1f} {100 * r['machine_busy']:4.0f}%  {split}",
        flush=True,
    )


def run(args: argparse.Namespace, counts: list[int]) -> list[dict[str, Any]]:
    """Boot one paused group per count, then `--repeat` passes over the groups in turn (so a
    change in the machine's load hits every N alike); one summary row per count."""
    with ExitStack() as stack:
        node = stack.enter_context(AnvilNode(block_time=args.block_time))
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="enclava-scale-")))
        site = stack.enter_context(cluster(connect(node.url), root, sum(counts)))
        starts = [sum(counts[:i]) for i in range(len(counts))]
        groups = [boot_group(site, n, first, args) for n, first in zip(counts, starts, strict=True)]
        bursts: list[list[dict[str, Any]]] = [[] for _ in counts]
        for repeat in range(args.repeat):
            for group, done in zip(groups, bursts, strict=True):
                done.append(measure_burst(site, group, args))
            line = "  ".join(
                f"N={n}: {b[-1]['rps']:.1f}" for n, b in zip(counts, bursts, strict=True)
            )
            print(f"pass {repeat + 1}/{args.repeat} rps  {line}", flush=True)
        return [summarise(g, b) for g, b in zip(groups, bursts, strict=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=120, help="requests per burst")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--block-time", type=int, default=0, help="Anvil block time (0: automine)")
    parser.add_argument("--agent", choices=sorted(BUNDLES), default="work")
    parser.add_argument("--batch-size", type=int, default=2, help="fulfilments per transaction")
    parser.add_argument("--poll-interval", type=float, default=0.2, help="worker step period (s)")
    parser.add_argument("--repeat", type=int, default=3, help="bursts per count (median kept)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    if not counts or min(counts) < 1 or args.repeat < 1:
        parser.error("--workers: positive counts; --repeat: at least 1")

    load = os.getloadavg()
    print(f"python {platform.python_version()}  cpus {os.cpu_count()}  {platform.machine()}")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    block = f"{args.block_time} s blocks" if args.block_time else "automine"
    print(
        f"agent {args.agent}, {args.requests} requests per burst, {args.repeat} bursts per N, "
        f"batch {args.batch_size}, {block}, XLA on one thread per worker",
        flush=True,
    )
    rows = run(args, counts)
    print(HEADER)
    for row in rows:
        print_row(row, rows[0]["rps"])
    if args.json:
        result: dict[str, Any] = {f"rps_{r['workers']}": r["rps"] for r in rows}
        result.update({f"speedup_{r['workers']}": r["rps"] / rows[0]["rps"] for r in rows[1:]})
        result.update(
            agent=args.agent, requests=args.requests, batch_size=args.batch_size,
            block_time=args.block_time, repeat=args.repeat, cpus=os.cpu_count(),
            load_avg_start=list(load), load_avg_end=list(os.getloadavg()), rounds=rows,
        )  # fmt: skip
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
