"""`enclava gateway serve`: run this worker's HTTP gateway over measured agents (see
`enclave.gateway`); `enclava call` is the caller's side. With `--gpu sim|nvml` its attestation
also carries GPU reports over the same nonce (`attestation.evidence`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import jax
import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console

from agents.builtin import builtin_bundle, builtin_names
from agents.errors import AgentError
from agents.runtime import AgentRuntime
from enclava import config
from enclava.logs import LogFormat, LogFormatOption, LogLevel, LogLevelOption, configure_logging
from enclava.output import BadInputError, fail
from enclava.tee_commands import StateOption, open_backend
from enclave.errors import EnclaveError
from enclave.gateway import ServedAgent, create_app, measure_agents_into
from enclave.keys import EnclaveKeys
from enclave.tee.base import TeeBackend
from enclave.tee.detect import BACKEND_NAMES
from enclave.tee.gpu import GpuSource
from enclave.tee.nvml import NvmlGpus
from enclave.tee.sim_gpu import SimulatedGpu

gateway_app = typer.Typer(help="This worker's HTTP gateway.", no_args_is_help=True)

DEFAULT_AGENTS = ("embed", "private-search")


DevicesOption = Annotated[
    int,
    typer.Option(
        help="Run each agent on this many local JAX devices (GPUs when present), data-parallel "
        "(0: all). Sharded programs are measured with their own digests.",
        min=0,
    ),
]


class GpuKind(StrEnum):
    NONE = "none"
    SIM = "sim"
    NVML = "nvml"


@gateway_app.command("serve")
def serve_command(
    agent: Annotated[
        list[str] | None,
        typer.Option(
            help="A built-in agent name or a bundle directory; repeat for several "
            f"(default: {', '.join(DEFAULT_AGENTS)})."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.", min=0, max=65535)] = 8000,
    backend: Annotated[
        str | None, typer.Option(help=f"TEE backend: {', '.join(BACKEND_NAMES)} (default: detect).")
    ] = None,
    state: StateOption = None,
    chain_id: Annotated[int, typer.Option(help="Chain id bound into every envelope.")] = 31337,
    gpu: Annotated[
        GpuKind,
        typer.Option(
            help="GPU evidence in the attestation: none; sim (a simulated H100 kept in the state "
            "directory); nvml (every NVIDIA GPU, CC mode on)."
        ),
    ] = GpuKind.NONE,
    devices: DevicesOption = 1,
    log_format: LogFormatOption = LogFormat.TEXT,
    log_level: LogLevelOption = LogLevel.INFO,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the boot summary as one JSON line.")
    ] = False,
) -> None:
    """Measure the agents into RTMR3 and serve attestation and signed agent calls until Ctrl-C.
    Uvicorn's access lines follow --log-format and --log-level."""
    configure_logging(log_format, log_level)
    console = Console(highlight=False, soft_wrap=True)
    directory = config.state_dir(state)
    with ExitStack() as stack:
        try:
            tee = open_backend(backend, directory)
            keys = EnclaveKeys.load_or_create(tee, config.sealed_keys_path(directory))
            agents = load_agents(stack, agent or list(DEFAULT_AGENTS), devices=devices)
            app = build_app(tee, keys, agents, chain_id, gpus=open_gpus(gpu, directory))
        except (BadInputError, EnclaveError, AgentError) as exc:
            fail(as_json, exc.code, exc.message)
        if as_json:
            summary = {
                "url": f"http://{host}:{port}",
                "tee": tee.kind,
                "worker": keys.address,
                "gpu": str(gpu),
                "agents": [
                    {"name": n, "version": a.manifest.version, "measurement": a.measurement.hex}
                    for n, a in agents.items()
                ],
            }
            print(json.dumps(summary, sort_keys=True), flush=True)
        else:
            console.print(f"gateway on [bold]http://{host}:{port}[/] ({tee.kind} TEE)")
            console.print(f"worker address {keys.address}")
            if gpu is not GpuKind.NONE:
                console.print(f"GPU evidence: {gpu}")
            for name, served in agents.items():
                console.print(f"agent {name} {served.manifest.version}: {served.measurement.hex}")
        options = uvicorn.Config(app, host=host, port=port, log_config=None, log_level=None)
        server = uvicorn.Server(options)
        with suppress(KeyboardInterrupt):
            server.run()
        if not as_json:
            console.print("gateway stopped")


def build_app(
    tee: TeeBackend,
    keys: EnclaveKeys,
    agents: Mapping[str, ServedAgent],
    chain_id: int,
    *,
    gpus: GpuSource | None = None,
) -> FastAPI:
    """Measure `agents` into `tee` (once, at boot) and build the gateway over them; `gpus`:
    the GPU evidence source (None: the attestation lists no GPUs)."""
    measure_agents_into(tee, agents)
    return create_app(tee=tee, keys=keys, agents=agents, chain_id=chain_id, gpus=gpus)


def open_gpus(kind: GpuKind, state: Path) -> GpuSource | None:
    """The GPU source `--gpu` names. `sim`: the simulated H100 of the state directory's
    simulator (created on first use; `load_gpu_trust_anchor` reads its root). `nvml`: checked
    now, so a machine without GPUs in CC mode fails at start rather than at the first call."""
    if kind is GpuKind.SIM:
        return SimulatedGpu(config.sim_state_dir(state), now=datetime.now(UTC))
    if kind is GpuKind.NVML:
        gpus = NvmlGpus()
        if not gpus.cc_state().enabled:
            raise BadInputError("gpu_cc_off", "--gpu nvml: GPU confidential computing is off")
        return gpus
    return None


def load_agents(stack: ExitStack, specs: list[str], *, devices: int = 1) -> dict[str, AgentRuntime]:
    """Load built-in agents or bundle directories (closed with `stack`), keyed by name, each on
    the first `devices` local JAX devices (0: all of them; several: data-parallel)."""
    available = jax.devices()
    if devices > len(available):
        raise BadInputError("bad_usage", f"--devices {devices}: only {len(available)} here")
    placed = available[:devices] if devices else available
    agents: dict[str, AgentRuntime] = {}
    for spec in specs:
        runtime = stack.enter_context(AgentRuntime.load(_bundle_path(spec), devices=placed))
        name = runtime.manifest.name
        if name in agents:
            raise BadInputError("bad_usage", f"agent {name!r} is given twice")
        agents[name] = runtime
    return agents


def _bundle_path(spec: str) -> Path:
    if spec in builtin_names():
        return builtin_bundle(spec)
    path = Path(spec)
    if not path.is_dir():
        known = ", ".join(builtin_names())
        raise BadInputError(
            "bad_usage", f"--agent {spec!r} is neither a built-in agent ({known}) nor a directory"
        )
    return path
