"""`enclava worker run`: the chain worker as a process (see `enclave.worker.process`).

Boot: open the TEE, unseal (or create) the worker keys, load the bundles and measure them into
RTMR3, bind each agent contract to the bundle its measurement pins, register through the
attestation service where not registered (or about to expire), then step until SIGINT/SIGTERM.
With `--gateway-port` the same process also serves the HTTP gateway over the same keys (its own
metrics at the gateway's /metrics); with `--metrics-port` the worker's metrics
(`enclave.worker.metrics`) are served at http://HOST:PORT/metrics, apart from the gateway, so
they can be scraped from a port the public never reaches.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from types import FrameType
from typing import Annotated, Any

import typer
from eth_utils.address import is_address, to_checksum_address
from prometheus_client import CollectorRegistry, start_http_server
from rich.console import Console

from agents.errors import AgentError
from contracts.chain import connect, load_account
from contracts.client import Transactor
from contracts.errors import ContractError
from enclava import config
from enclava.chain_commands import KeystoreOption
from enclava.devstack import serve_in_thread
from enclava.gateway_commands import (
    DEFAULT_AGENTS,
    DevicesOption,
    GpuKind,
    load_agents,
    open_gpus,
)
from enclava.logs import (
    LogFormat,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    adopt_uvicorn_loggers,
    configure_logging,
)
from enclava.output import BadInputError, fail
from enclava.tee_commands import StateOption, open_backend
from enclave.errors import EnclaveError
from enclave.gateway import create_app, measure_agents_into
from enclave.gateway.metrics import GatewayMetrics
from enclave.keys import EnclaveKeys
from enclave.tee.detect import BACKEND_NAMES
from enclave.worker import Worker, WorkerState
from enclave.worker.metrics import WorkerMetrics
from enclave.worker.payout import Payout
from enclave.worker.peers import RegistryPeers
from enclave.worker.process import Telemetry, WorkerProcess, bind_agents
from enclave.worker.registration import AttestationServiceClient, Registrar

worker_app = typer.Typer(help="The chain worker.", no_args_is_help=True)


@worker_app.command("run")
def run_command(
    rpc_url: Annotated[str, typer.Option(help="JSON-RPC URL of the chain.")],
    agent_contract: Annotated[
        list[str], typer.Option(help="An agent contract to serve (repeatable).")
    ],
    attestation_service: Annotated[
        str, typer.Option(help="Base URL of the attestation service that signs verdicts.")
    ],
    bundle: Annotated[
        list[str] | None,
        typer.Option(
            help="A built-in agent or bundle directory (repeatable; default: "
            f"{', '.join(DEFAULT_AGENTS)}). Each contract is served by the bundle it pins."
        ),
    ] = None,
    attestation_policy: Annotated[
        str | None,
        typer.Option(help="Service policy to verify under (default: dev when simulated)."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help=f"TEE backend: {', '.join(BACKEND_NAMES)} (default: detect).")
    ] = None,
    devices: DevicesOption = 1,
    gpu: Annotated[
        GpuKind,
        typer.Option(help="GPU evidence for registration and the gateway: none, sim or nvml."),
    ] = GpuKind.NONE,
    state: StateOption = None,
    keystore: KeystoreOption = None,
    confirmations: Annotated[int, typer.Option(help="Blocks before an event is read.", min=0)] = 0,
    batch_size: Annotated[int, typer.Option(help="Most fulfilments per transaction.", min=1)] = 16,
    start_block: Annotated[
        int, typer.Option(help="First block to read for an agent never read before.", min=0)
    ] = 0,
    poll_interval: Annotated[float, typer.Option(help="Seconds between steps.", min=0.01)] = 1.0,
    grace: Annotated[
        float, typer.Option(help="Seconds before any peer may take another's request.", min=0)
    ] = 60.0,
    gateway_host: Annotated[str, typer.Option(help="Gateway listen address.")] = "127.0.0.1",
    gateway_port: Annotated[
        int | None, typer.Option(help="Also serve the HTTP gateway on this port.", min=0)
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Metrics listen address.")] = "127.0.0.1",
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve the worker's Prometheus metrics on this port.", min=0),
    ] = None,
    payout_to: Annotated[
        str | None,
        typer.Option(
            help="Sweep this worker's earnings (credited to its enclave key) to this address, "
            "every --payout-every seconds and at shutdown."
        ),
    ] = None,
    payout_every: Annotated[
        float, typer.Option(help="Seconds between payout sweeps.", min=1)
    ] = 3_600.0,
    log_format: LogFormatOption = LogFormat.TEXT,
    log_level: LogLevelOption = LogLevel.INFO,
    as_json: Annotated[bool, typer.Option("--json", help="Print the boot summary as JSON.")] = (
        False
    ),
) -> None:
    """Register this TEE worker for AGENT_CONTRACTs and fulfil their requests until stopped.
    The gas-paying account comes from ENCLAVA_PRIVATE_KEY or --keystore."""
    configure_logging(log_format, log_level)
    directory = config.state_dir(state)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()  # the current step finishes; a stop during boot ends right after it

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    with ExitStack() as stack:
        try:
            tee = open_backend(backend, directory)
            keys = EnclaveKeys.load_or_create(tee, config.sealed_keys_path(directory))
            runtimes = load_agents(stack, bundle or list(DEFAULT_AGENTS), devices=devices)
            measure_agents_into(tee, runtimes)  # before any quote: RTMR3 names the bundles
            sender = load_account(keystore=keystore)
            tx = Transactor(connect(rpc_url))
            registry, agents = bind_agents(tx, agent_contract, runtimes)
            service = AttestationServiceClient(attestation_service)
            stack.callback(service.close)
            policy = attestation_policy or ("dev" if tee.kind == "simulated" else "default")
            gpus = open_gpus(gpu, directory)
            registrar = Registrar(
                tee, keys, tx, sender, registry, service, policy=policy, gpus=gpus
            )
            registrar.renew({a.name: a.measurement for a in agents})
            db = WorkerState(directory / "worker.db")
            stack.callback(db.close)
            peers = RegistryPeers(tx, registry, {a.address: a.measurement for a in agents})
            served = {a.address: a.runtime for a in agents}
            worker = Worker(
                tx, keys, served, db, sender=sender, confirmations=confirmations,
                batch_size=batch_size, peers=peers, grace_s=grace, start_block=start_block,
            )  # fmt: skip
            metrics_registry = CollectorRegistry(auto_describe=True)
            telemetry = Telemetry(db, WorkerMetrics(metrics_registry), _head(tx))
            payout = None
            if payout_to is not None:
                if not is_address(payout_to):
                    raise BadInputError("bad_usage", f"--payout-to {payout_to!r} is not an address")
                contracts = [a.address for a in agents]
                payout = Payout(tx, keys, contracts, to_checksum_address(payout_to), sender)
            process = WorkerProcess(
                worker, registrar, peers, agents, interval_s=poll_interval, telemetry=telemetry,
                payout=payout, payout_every_s=payout_every,
            )  # fmt: skip
            metrics_url = None
            if metrics_port is not None:
                metrics_url = _serve_metrics(stack, metrics_registry, metrics_host, metrics_port)
            gateway_url = None
            if gateway_port is not None:
                app = create_app(
                    tee=tee, keys=keys, agents=runtimes, chain_id=tx.chain.chain_id, gpus=gpus,
                    metrics=GatewayMetrics(metrics_registry),  # /metrics: the worker's too
                )  # fmt: skip
                served_at = serve_in_thread(app, host=gateway_host, port=gateway_port)
                gateway_url = stack.enter_context(served_at)
                adopt_uvicorn_loggers()  # its access lines in --log-format too
        except (BadInputError, EnclaveError, AgentError, ContractError) as exc:
            fail(as_json, exc.code, exc.message)
        summary: dict[str, Any] = {
            "worker": keys.address,
            "tee": tee.kind,
            "chain_id": tx.chain.chain_id,
            "registry": registry,
            "gateway_url": gateway_url,
            "metrics_url": metrics_url,
            "agents": [
                {"name": a.name, "contract": a.address, "measurement": "0x" + a.measurement.hex()}
                for a in agents
            ],
        }
        _print_summary(summary, as_json)
        process.run(stop)


def _head(tx: Transactor) -> Callable[[], int]:
    return lambda: int(tx.chain.w3.eth.block_number)


def _serve_metrics(stack: ExitStack, registry: CollectorRegistry, host: str, port: int) -> str:
    """Serve `registry` in a thread until `stack` closes; its /metrics URL."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise BadInputError("bad_usage", f"cannot serve metrics on {host}:{port}: {exc}") from None
    stack.callback(thread.join, 5.0)
    stack.callback(server.server_close)
    stack.callback(server.shutdown)
    return f"http://{host}:{server.server_port}/metrics"


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, sort_keys=True), flush=True)
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"worker {summary['worker']} ({summary['tee']} TEE), chain {summary['chain_id']}")
    for agent in summary["agents"]:
        console.print(f"serving {agent['name']} at {agent['contract']}")
    if summary["gateway_url"]:
        console.print(f"gateway on {summary['gateway_url']}")
    if summary["metrics_url"]:
        console.print(f"metrics on {summary['metrics_url']}")
