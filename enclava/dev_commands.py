"""`enclava dev`: the whole stack locally (chain, attestation service, contracts, a registered
worker and its gateway), optionally with an end-to-end demo; see `enclava.devstack`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agents.errors import AgentError
from attestation.errors import AttestationError
from contracts.anvil import AnvilNode
from contracts.chain import EMBEDDED
from contracts.errors import ContractError
from enclava import config
from enclava.devstack import DemoStep, DevStack, DevStackError
from enclava.gateway_commands import DEFAULT_AGENTS
from enclava.output import EXIT_ACCEPTED, EXIT_REJECTED, fail, progress
from enclave.errors import EnclaveError

__all__ = ["dev", "write_env_file"]


def dev(
    rpc_url: Annotated[
        str | None, typer.Option(help="A development node (e.g. Anvil); default: embedded chain.")
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="State directory (simulator, sealed keys, worker state).")
    ] = None,
    agent: Annotated[
        list[str] | None,
        typer.Option(
            help="A built-in agent name or a bundle directory; repeat for several "
            f"(default: {', '.join(DEFAULT_AGENTS)})."
        ),
    ] = None,
    anvil: Annotated[
        bool,
        typer.Option(
            "--anvil", help="Start a local Anvil node (npm @foundry-rs/anvil) and use it."
        ),
    ] = False,
    env_file: Annotated[
        Path | None,
        typer.Option(
            help="Once up, write `export ENCLAVA_...=` lines (URLs, addresses, a funded dev "
            "key) here for other shells: `source FILE`."
        ),
    ] = None,
    gpu: Annotated[
        bool,
        typer.Option(
            "--gpu", help="Add a simulated H100: its reports join registration and attestation."
        ),
    ] = False,
    demo: Annotated[
        bool, typer.Option("--demo", help="Call every agent on chain and over HTTP, then exit.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run chain, attestation service, contracts, a registered worker and its gateway locally."""
    console = Console(highlight=False, soft_wrap=True)
    if anvil and rpc_url is not None:
        fail(as_json, "bad_usage", "pass either --anvil or --rpc-url, not both")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stop.set())
    try:
        with ExitStack() as running:
            if anvil:
                rpc_url = running.enter_context(AnvilNode()).url
            with progress("starting the stack", as_json) as step:
                stack = DevStack(
                    config.state_dir(state),
                    rpc_url=rpc_url or EMBEDDED,
                    agents=agent or list(DEFAULT_AGENTS),
                    gpu=gpu,
                    on_step=step,
                )
                running.enter_context(stack)
            summary = stack.to_dict()
            if env_file is not None:
                write_env_file(env_file, stack)
            if not demo:
                _print_summary(console, summary, as_json)
                if not as_json:
                    console.print("running; Ctrl-C stops everything")
                stop.wait()
                if not as_json:
                    console.print("stopping")
                return
            with progress("calling every agent on chain and over HTTP", as_json):
                steps = stack.demo()
    except (DevStackError, ContractError, AgentError, EnclaveError, AttestationError) as exc:
        fail(as_json, exc.code, str(exc))
    ok = bool(steps) and all(s.ok for s in steps)
    if as_json:
        doc = {**summary, "demo": {"ok": ok, "steps": [s.to_dict() for s in steps]}}
        print(json.dumps(doc, sort_keys=True))
    else:
        _print_summary(console, summary, False)
        _print_demo(console, steps, ok)
    raise typer.Exit(EXIT_ACCEPTED if ok else EXIT_REJECTED)


def write_env_file(path: Path, stack: DevStack) -> None:
    """Shell `export` lines describing the running stack, mode 0600 (it holds dev keys). The
    keys are development accounts (the caller's, and a spare one to pay another worker's gas),
    never real ones: `DevStack` refuses chains without funded development accounts."""
    agents = {
        f"ENCLAVA_AGENT_{name.upper().replace('-', '_')}": a.contract.address
        for name, a in stack.agents.items()
    }
    values = {
        "ENCLAVA_RPC_URL": stack.chain.url,
        "ENCLAVA_CHAIN_ID": str(stack.chain.chain_id),
        "ENCLAVA_GATEWAY_URL": stack.gateway_url,
        "ENCLAVA_SERVICE_URL": stack.service_url,
        "ENCLAVA_SERVICE_SIGNER": stack.service_signer,
        "ENCLAVA_VERIFIER": stack.deployment.verifier,
        "ENCLAVA_REGISTRY": stack.deployment.registry,
        "ENCLAVA_FACTORY": stack.deployment.factory,
        "ENCLAVA_WORKER": stack.keys.address,
        "ENCLAVA_STATE_DIR": str(stack.state.resolve()),
        "ENCLAVA_PRIVATE_KEY": "0x" + bytes(stack.caller.key).hex(),
        "ENCLAVA_DEV_GAS_KEY": "0x" + bytes(stack.spare.key).hex(),
        **agents,
    }
    text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)  # appears complete or not at all: a waiting shell may source it at once


def _print_summary(console: Console, summary: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, sort_keys=True), flush=True)
        return
    chain = summary["chain"]
    contracts = summary["contracts"]
    assert isinstance(chain, dict) and isinstance(contracts, dict)
    console.print(f"chain      {chain['url']} (id {chain['chain_id']})")
    for name, address in contracts.items():
        console.print(f"{name:<10} {address}")
    console.print(f"service    {summary['service_url']} (signer {summary['service_signer']})")
    console.print(f"gateway    {summary['gateway_url']}")
    console.print(f"worker     {summary['worker']}")
    agents = summary["agents"]
    assert isinstance(agents, list)
    for a in agents:
        console.print(
            f"agent      {a['name']} {a['version']}: {a['contract']} pins {a['measurement']}"
        )


def _print_demo(console: Console, steps: list[DemoStep], ok: bool) -> None:
    table = Table(title="enclava dev --demo")
    table.add_column("step")
    table.add_column("result")
    for s in steps:
        mark = "[green]ok[/]" if s.ok else "[bold red]FAILED[/]"
        table.add_row(s.step, f"{mark} {s.detail}")
    console.print(table)
    console.print("[green]everything verified[/]" if ok else "[bold red]demo failed[/]")
