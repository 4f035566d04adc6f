"""`enclava call`: verify a worker gateway's attestation, call one of its agents (encrypted by
default) and verify the signed answer (see `enclave.gateway_client`)."""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from attestation import Collateral, Policy, TrustAnchor
from attestation.errors import AttestationError
from enclava import config
from enclava.evidence import fetch_collateral, read_collateral, trust_anchor
from enclava.output import EXIT_REJECTED, BadInputError, fail
from enclava.tee_commands import StateOption
from enclave.errors import EnclaveError
from enclave.gateway_client import (
    GatewayClient,
    GatewayClientError,
    GatewayVerificationError,
    InvokeResult,
    VerifiedGateway,
)
from enclave.tee.sim import SimulatedTdx


def call(
    agent: Annotated[str, typer.Argument(help="The agent to call, by name.")],
    input: Annotated[str, typer.Option(help="The agent's input: JSON text, or @FILE.")],
    http: Annotated[str, typer.Option(help="The gateway's base URL, e.g. http://127.0.0.1:8000.")],
    measurement: Annotated[
        str | None,
        typer.Option(
            help="Require this agent bundle measurement (96 hex digits, `enclava measure`). "
            "Pinning it from the agent's on-chain contract is not done yet."
        ),
    ] = None,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            help="Accept a simulated TEE: trust the local simulator's root and collateral."
        ),
    ] = False,
    state: StateOption = None,
    collateral: Annotated[
        Path | None, typer.Option(help="Collateral JSON for the gateway's quote.")
    ] = None,
    pccs: Annotated[
        str | None, typer.Option(help="Fetch collateral from this PCCS / PCS (default: Intel PCS).")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy file (TOML or JSON).")] = None,
    plain: Annotated[
        bool, typer.Option(help="Send the input unencrypted (still signed and verified).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Verify a gateway's attestation, call AGENT and verify its signed answer."""
    now = datetime.now(UTC)
    nonce = secrets.token_bytes(32)
    try:
        if collateral is not None and pccs is not None:
            raise BadInputError("bad_usage", "pass either --collateral or --pccs, not both")
        data = _read_input(input)
        pinned = _measurement(measurement)
        rules = Policy.from_file(policy) if policy else Policy()
        if allow_simulated:
            rules = dataclasses.replace(rules, allow_simulated=True)
        with GatewayClient(http) as client:
            att = client.attest(nonce)
            coll, anchor = _evidence(att.quote, collateral, pccs, allow_simulated, state, now)
            verified = client.verify_attestation(
                att,
                nonce,
                collateral=coll,
                now=now,
                trust_anchor=anchor,
                policy=rules,
                expected_measurement=pinned,
            )
            result = client.invoke(verified, agent, data, encrypt=not plain)
    except GatewayVerificationError as exc:
        _reject(as_json, exc)
    except (BadInputError, GatewayClientError, EnclaveError, AttestationError) as exc:
        fail(as_json, exc.code, exc.message, fields={"verified": False})
    _emit(verified, result, pinned is not None, as_json)


def _read_input(text: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(
                "unreadable_input", f"cannot read input {text[1:]}: {exc}"
            ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInputError("bad_input", f"--input is not JSON: {exc}") from None


def _measurement(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise BadInputError("bad_usage", "--measurement is not hex") from None
    if len(raw) != 48:
        raise BadInputError("bad_usage", f"--measurement must be 48 bytes, got {len(raw)}")
    return raw


def _evidence(
    quote: bytes,
    collateral: Path | None,
    pccs: str | None,
    simulated: bool,
    state: Path | None,
    now: datetime,
) -> tuple[Collateral, TrustAnchor]:
    """The collateral and trust anchor to verify the gateway's quote against."""
    anchor = trust_anchor(None, simulated=simulated, state=state)
    if collateral is not None:
        return read_collateral(collateral), anchor
    if simulated and pccs is None:
        sim_dir = config.sim_state_dir(config.state_dir(state))
        return SimulatedTdx(sim_dir, now=now).collateral(now=now), anchor
    return fetch_collateral(quote, pccs, None, now), anchor


def _reject(as_json: bool, exc: GatewayVerificationError) -> NoReturn:
    doc = {"verified": False, "error": {"code": exc.code, "check": exc.check, "message": str(exc)}}
    if as_json:
        print(json.dumps(doc, sort_keys=True))
    else:
        Console(stderr=True, highlight=False).print(
            f"[bold red]untrusted gateway[/] ({exc.check}): {exc}"
        )
    raise typer.Exit(EXIT_REJECTED)


def _checks(result: InvokeResult, pinned: bool) -> list[str]:
    """The checks that passed: the attestation's, then the answer's."""
    checks = ["nonce", "quote", "policy", "binding", "event_log", "agents"]
    checks += ["measurement"] if pinned else []
    checks += ["agent", "request_hash", "response_hash", "signature"]
    return checks + (["envelope"] if result.encrypted else [])


def _emit(verified: VerifiedGateway, result: InvokeResult, pinned: bool, as_json: bool) -> None:
    quoted = verified.verified_quote
    doc = {
        "output": result.output,
        "verified": True,
        "checks": _checks(result, pinned),
        "worker_address": verified.address,
        "agent": result.agent.name,
        "agent_version": result.agent.version,
        "agent_measurement": result.agent.measurement.hex(),
        "signature_ok": True,
        "encrypted": result.encrypted,
        "response_id": result.response_id,
        "tee": quoted.tee,
        "tcb_status": str(quoted.tcb_status),
        "simulated": quoted.simulated,
        "relaxations": list(verified.decision.relaxations),
    }
    if as_json:
        print(json.dumps(doc, sort_keys=True))
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print_json(json.dumps(result.output))
    mode = "encrypted" if result.encrypted else "plain"
    console.print(
        f"[bold green]verified[/] {doc['tee']} gateway {verified.address} "
        f"(TCB {doc['tcb_status']}{', simulated' if quoted.simulated else ''})"
    )
    console.print(f"agent {result.agent.name} {result.agent.version}: {doc['agent_measurement']}")
    console.print(f"answer signed by the worker key, {mode}; checks: {', '.join(doc['checks'])}")
