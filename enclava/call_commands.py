"""`enclava call`: verify a worker gateway's attestation, call one of its agents (encrypted by
default) and verify the signed answer (see `enclave.gateway_client`); with `--chain`, call the
agent's contract instead (see `enclava.chain_commands`). Also the gateway side of
`enclava verify --url`: fetch an attestation and check its binding, its event log and each of
its GPUs."""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from attestation import Policy, TrustAnchor
from attestation.binding import check_worker_report_data
from attestation.errors import AttestationError
from attestation.eventlog import check_rtmrs
from attestation.evidence import GpuResult, verify_gpus
from attestation.gpu import gpu_nonce, nvidia_device_root
from attestation.report import TdReport10
from attestation.verdict import Verdict
from contracts.chain import connect
from contracts.errors import ContractError
from enclava.chain_commands import JsonOption, KeystoreOption, chain_call
from enclava.gateway_trust import (
    GatewayTrust,
    agent_contract,
    contract_measurement,
    pinned_agent,
    verify_gateway,
)
from enclava.output import EXIT_REJECTED, BadInputError, fail
from enclava.tee_commands import StateOption
from enclave.errors import EnclaveError
from enclave.gateway_client import (
    Attestation,
    GatewayClient,
    GatewayClientError,
    GatewayVerificationError,
    InvokeResult,
    VerifiedGateway,
)


def call(
    agent: Annotated[
        str, typer.Argument(help="The agent to call: its name (--http), its address (--chain).")
    ],
    input: Annotated[str, typer.Option(help="The agent's input: JSON text, or @FILE.")],
    http: Annotated[
        str | None, typer.Option(help="The gateway's base URL, e.g. http://127.0.0.1:8000.")
    ] = None,
    chain: Annotated[
        bool, typer.Option("--chain", help="Call the agent's contract on a chain (--rpc-url).")
    ] = False,
    rpc_url: Annotated[
        str | None,
        typer.Option(help="JSON-RPC URL of the chain (--chain, or --http with --agent-contract)."),
    ] = None,
    agent_contract: Annotated[
        str | None,
        typer.Option(
            help="With --http: require the measurement this agent contract pins (needs --rpc-url)."
        ),
    ] = None,
    encrypt_to: Annotated[
        str | None,
        typer.Option(
            help="With --chain: seal the input to this gateway's attested worker (it must be "
            "registered for the agent) and open the sealed answer."
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="With --chain: seconds to wait for the fulfilment.", min=0)
    ] = 120.0,
    keystore: KeystoreOption = None,
    measurement: Annotated[
        str | None,
        typer.Option(
            help="Require this agent bundle measurement (96 hex digits, `enclava measure`)."
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
    as_json: JsonOption = False,
) -> None:
    """Verify a gateway's attestation, call AGENT and verify its signed answer (--http); or pay
    AGENT's contract, wait for its fulfilment and verify the worker (--chain)."""
    if (http is None) == (not chain):
        fail(as_json, "bad_usage", "pass exactly one of --http URL / --chain")
    try:
        trust = GatewayTrust(allow_simulated, state, collateral, pccs, policy)
    except BadInputError as exc:
        fail(as_json, exc.code, exc.message)
    if chain:
        if rpc_url is None or agent_contract is not None:
            fail(as_json, "bad_usage", "--chain needs --rpc-url, and takes no --agent-contract")
        chain_call(
            agent,
            input,
            rpc_url,
            wait=wait,
            keystore=keystore,
            as_json=as_json,
            encrypt_to=encrypt_to,
            trust=trust,
        )
    assert http is not None
    if encrypt_to is not None or (rpc_url is None) != (agent_contract is None):
        fail(as_json, "bad_usage", "--http takes --agent-contract with --rpc-url, no --encrypt-to")
    _call_http(agent, input, http, trust, measurement, rpc_url, agent_contract, plain, as_json)


def _call_http(
    agent: str,
    input: str,
    url: str,
    trust: GatewayTrust,
    measurement: str | None,
    rpc_url: str | None,
    contract: str | None,
    plain: bool,
    as_json: bool,
) -> None:
    """`call --http`: pinned to `measurement` (a bundle digest) and/or to the measurement the
    agent contract `contract` pins on the chain at `rpc_url`."""
    pins: dict[str, str] = {}
    try:
        data = _read_input(input)
        pinned = _measurement(measurement)
        onchain = None
        if contract is not None and rpc_url is not None:
            onchain = contract_measurement(agent_contract(connect(rpc_url), contract))
            pins = {"agent_contract": contract, "contract_measurement": "0x" + onchain.hex()}
        with GatewayClient(url) as client:
            verified = verify_gateway(
                client, trust, now=datetime.now(UTC), expected_measurement=pinned
            )
            if onchain is not None:
                attested = pinned_agent(verified, agent, onchain)
                verified = dataclasses.replace(verified, expected_measurement=attested.measurement)
            result = client.invoke(verified, agent, data, encrypt=not plain)
    except GatewayVerificationError as exc:
        _reject(as_json, exc, pins)
    except (
        BadInputError,
        GatewayClientError,
        EnclaveError,
        AttestationError,
        ContractError,
    ) as exc:
        fail(as_json, exc.code, exc.message, fields={"verified": False})
    _emit(verified, result, measurement is not None, pins, as_json)


def fetch_attestation(url: str) -> tuple[Attestation, bytes]:
    """The gateway's attestation for a fresh 32-byte nonce, and the nonce."""
    nonce = secrets.token_bytes(32)
    with GatewayClient(url) as client:
        return client.attest(nonce), nonce


def gateway_checks(
    att: Attestation,
    nonce: bytes,
    verdict: Verdict,
    *,
    policy: Policy | None = None,
    gpu_anchors: tuple[TrustAnchor, ...] | None = None,
    now: datetime | None = None,
) -> dict[str, dict[str, str]]:
    """`binding` (REPORTDATA binds the attested address, X25519 key and our nonce) and
    `event_log` (the event log replays to the quoted RTMRs): each `{status, detail}`, status
    "pass", "fail" or "not run" (the quote did not verify). Then one `gpu[i]` per GPU (its
    verification against `gpu_nonce(nonce)` and `policy`'s GPU rules, with its facts) and
    `gpus` when the policy requires GPUs (`gpu_checks`)."""
    return {
        **_cpu_checks(att, nonce, verdict),
        **gpu_checks(
            att,
            nonce,
            policy=policy or Policy(),
            anchors=gpu_anchors or (nvidia_device_root(),),
            now=now or datetime.now(UTC),
        ),
    }


def gpu_checks(
    att: Attestation,
    nonce: bytes,
    *,
    policy: Policy,
    anchors: tuple[TrustAnchor, ...],
    now: datetime,
) -> dict[str, dict[str, str]]:
    """Per GPU `gpu[i]`: `{status, detail}` and, when it verified, its model, FWID, driver,
    CC state and root; `gpus`: whether enough GPUs were attested (only when the policy
    requires some)."""
    results = verify_gpus(
        att.gpus, spdm_nonce=gpu_nonce(nonce), now=now, trust_anchors=anchors, policy=policy
    )
    out = {f"gpu[{r.index}]": _gpu_entry(r) for r in results}
    if policy.require_gpus:
        short = policy.gpu_count_reason(sum(r.accepted for r in results))
        out["gpus"] = {
            "status": "fail" if short else "pass",
            "detail": short or f"{policy.require_gpus} attested GPU(s) required and present",
        }
    return out


def _gpu_entry(result: GpuResult) -> dict[str, str]:
    v = result.verified
    if v is None:
        return {"status": "fail", "detail": "; ".join(result.reasons)}
    cc = result.evidence.cc_state
    mode = ("CC on" if cc.enabled else "CC off") + (", devtools" if cc.devtools else "")
    facts = f"{v.model} ({v.arch}), driver {v.driver_version}, {mode}, FWID {v.fwid.hex()[:16]}..."
    return {
        "status": "pass" if result.accepted else "fail",
        "detail": "; ".join(result.reasons) or facts,
        "model": v.model,
        "fwid": v.fwid.hex(),
        "driver_version": v.driver_version,
        "cc_state": "on" if cc.enabled else "off",
        "simulated": str(v.simulated).lower(),
        "trust_anchor": v.trust_anchor,
    }


def _cpu_checks(att: Attestation, nonce: bytes, verdict: Verdict) -> dict[str, dict[str, str]]:
    vq = verdict.verified_quote
    if vq is None:
        skipped = {"status": "not run", "detail": "the quote did not verify"}
        return {"binding": skipped, "event_log": dict(skipped)}
    report = vq.quote.report
    binding = {"status": "pass", "detail": "REPORTDATA binds the address, X25519 key and nonce"}
    try:
        if att.nonce != nonce:
            raise ValueError("the attestation answers another nonce")
        address = bytes.fromhex(att.address.removeprefix("0x"))
        check_worker_report_data(report.report_data, address, att.x25519_public, nonce)
    except (AttestationError, ValueError) as exc:
        binding = {"status": "fail", "detail": str(exc)}
    event_log = {"status": "pass", "detail": f"{len(att.event_log)} events replay to the RTMRs"}
    if not isinstance(report, TdReport10):
        event_log = {"status": "fail", "detail": "an SGX quote has no RTMR3 to replay against"}
    else:
        covered = {e.imr for e in att.event_log} | {3}
        initial = [bytes(48) if i in covered else report.rtmrs[i] for i in range(4)]
        try:
            check_rtmrs(att.event_log, report.rtmrs, initial=initial)
        except AttestationError as exc:
            event_log = {"status": "fail", "detail": exc.message}
    return {"binding": binding, "event_log": event_log}


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


def _reject(as_json: bool, exc: GatewayVerificationError, pins: dict[str, str]) -> NoReturn:
    error = {"code": exc.code, "check": exc.check, "message": str(exc)}
    doc = {**pins, "verified": False, "error": error}
    if as_json:
        print(json.dumps(doc, sort_keys=True))
    else:
        Console(stderr=True, highlight=False).print(
            f"[bold red]untrusted gateway[/] ({exc.check}): {exc}"
        )
    raise typer.Exit(EXIT_REJECTED)


def _checks(result: InvokeResult, pinned: bool, contract: bool) -> list[str]:
    """The checks that passed: the attestation's, then the answer's."""
    checks = ["nonce", "quote", "policy", "binding", "event_log", "agents"]
    checks += ["measurement"] if pinned else []
    checks += ["contract_measurement"] if contract else []
    checks += ["agent", "request_hash", "response_hash", "signature"]
    return checks + (["envelope"] if result.encrypted else [])


def _emit(
    verified: VerifiedGateway,
    result: InvokeResult,
    pinned: bool,
    pins: dict[str, str],
    as_json: bool,
) -> None:
    """`pins`: the agent contract and its measurement, when the call was pinned to one."""
    quoted = verified.verified_quote
    doc = {
        **pins,
        "output": result.output,
        "verified": True,
        "checks": _checks(result, pinned, bool(pins)),
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
    if pins:
        console.print(f"pinned by agent contract {pins['agent_contract']}")
    console.print(f"answer signed by the worker key, {mode}; checks: {', '.join(doc['checks'])}")
