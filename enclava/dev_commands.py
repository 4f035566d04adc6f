"""`enclava dev`: the whole stack locally (chain, attestation service, contracts, a registered
worker and its gateway), optionally with an end-to-end demo; see `enclava.devstack`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agents.errors import AgentError
from attestation.errors import AttestationError
from contracts.chain import EMBEDDED
from contracts.errors import ContractError
from enclava import config
from enclava.devstack import DEFAULT_AGENTS, DemoStep, DevStack, DevStackError
from enclava.output import EXIT_ACCEPTED, EXIT_REJECTED, fail
from enclave.errors import EnclaveError

__all__ = ["dev"]


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
    demo: Annotated[
        bool, typer.Option("--demo", help="Call every agent on chain and over HTTP, then exit.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run chain, attestation service, contracts, a registered worker and its gateway locally."""
    console = Console(highlight=False, soft_wrap=True)
    stack = DevStack(
        config.state_dir(state),
        rpc_url=rpc_url or EMBEDDED,
        agents=agent or list(DEFAULT_AGENTS),
    )
    try:
        with stack:
            summary = stack.to_dict()
            if not demo:
                _print_summary(console, summary, as_json)
                if not as_json:
                    console.print("running; Ctrl-C stops everything")
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    if not as_json:
                        console.print("stopping")
                return
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
