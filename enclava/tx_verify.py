"""`enclava verify --tx HASH`: verify a past on-chain result, step by step.

From the transaction (a `fulfill` or `fulfillBatch` sent to an Agent): its `Fulfilled` events,
the agent's measurement and registry, the worker signature in the calldata (it must recover to
the event's worker), the worker's registration for the agent's measurement (`registrationFor`;
it must have been valid at the fulfilment block's time), then the worker's quote, verified
exactly as `enclava verify` does (same collateral, policy and trust-anchor options).

The quote comes from a file or from the worker's gateway (`--url`):

* a file must be the quote the worker registered with: SHA-256(quote) == the registration's
  `quoteHash`. With collateral given (`--collateral`), everything is checked offline.
* `--url` fetches a fresh quote (for a fresh nonce), which can never match the registered
  `quoteHash`; instead the fresh quote is verified AND its REPORTDATA must bind the same worker
  address (plus the gateway's event log, as `verify --url`). That proves the worker key lives in
  an attested TEE now, not that the registered quote was good.

Exit status: 0 every step passed; 1 some check failed; 2 bad input (not a fulfilment, unknown
transaction, unreadable quote or collateral, unreachable RPC).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from rich.console import Console
from web3.logs import DISCARD

from attestation import Policy, QuoteVerifier
from attestation.errors import AttestationError
from attestation.quote import decode_quote_file
from attestation.verdict import Verdict, explain_quote
from contracts.chain import Chain, connect
from contracts.client import Transactor
from contracts.errors import ContractError
from contracts.typed_data import fulfillment_message
from enclava.call_commands import fetch_attestation, gateway_checks
from enclava.evidence import choose_collateral, gpu_trust_anchors, trust_anchor
from enclava.output import EXIT_ACCEPTED, EXIT_REJECTED, BadInputError, fail
from enclave.errors import EnclaveError

__all__ = ["EvidenceOptions", "verify_tx"]


@dataclasses.dataclass(frozen=True)
class EvidenceOptions:
    """`enclava verify`'s quote-verification options, passed through unchanged."""

    collateral: Path | None
    pccs: str | None
    at: int | None
    policy: Path | None
    root: Path | None
    cache_dir: Path | None
    allow_simulated: bool
    state: Path | None


@dataclasses.dataclass(frozen=True)
class _Fulfilment:
    request_id: int
    worker: str
    input_hash: bytes
    output: bytes
    signature: bytes | None


def verify_tx(
    tx_hash: str,
    rpc_url: str | None,
    quote: Path | None,
    url: str | None,
    options: EvidenceOptions,
    as_json: bool,
    request_id: int | None = None,
) -> None:
    """Run every step, print the report, exit 0 (all passed), 1 (a check failed) or 2.
    `request_id`: verify only that fulfilment of the transaction (default: all of them)."""
    steps: list[dict[str, str]] = []
    doc: dict[str, Any] = {"tx": tx_hash}
    try:
        if rpc_url is None:
            raise BadInputError("bad_usage", "--tx needs --rpc-url")
        if (quote is None) == (url is None):
            raise BadInputError("bad_usage", "--tx needs exactly one of QUOTE / --url")
        if options.collateral is not None and options.pccs is not None:
            raise BadInputError("bad_usage", "pass either --collateral or --pccs, not both")
        chain = connect(rpc_url)
        worker, quote_hash = _chain_steps(chain, tx_hash, request_id, steps, doc)
        _quote_steps(worker, quote_hash, quote, url, options, steps, doc)
    except BadInputError as exc:
        fail(as_json, exc.code, exc.message, fields={"verified": False, "steps": steps})
    except (ContractError, AttestationError, EnclaveError) as exc:
        fail(as_json, exc.code, str(exc), fields={"verified": False, "steps": steps})
    verified = all(s["status"] == "pass" for s in steps)
    doc.update(verified=verified, steps=steps)
    _print(doc, as_json)
    raise typer.Exit(EXIT_ACCEPTED if verified else EXIT_REJECTED)


def _step(steps: list[dict[str, str]], name: str, ok: bool, detail: str) -> bool:
    steps.append({"step": name, "status": "pass" if ok else "fail", "detail": detail})
    return ok


def _chain_steps(
    chain: Chain,
    tx_hash: str,
    request_id: int | None,
    steps: list[dict[str, str]],
    doc: dict[str, Any],
) -> tuple[str, bytes]:
    """The on-chain steps; the worker and its registered quoteHash. A batch may hold several
    workers' fulfilments, but a quote is one worker's: `request_id` picks one fulfilment."""
    w3 = chain.w3
    try:
        raw_hash = bytes.fromhex(tx_hash.removeprefix("0x"))
    except ValueError:
        raise BadInputError("bad_input", f"--tx: {tx_hash!r} is not a hash") from None
    if len(raw_hash) != 32:
        raise BadInputError("bad_input", f"--tx: {tx_hash!r} is not a 32-byte hash")
    try:
        tx = w3.eth.get_transaction(raw_hash)  # type: ignore[arg-type]
        receipt = w3.eth.get_transaction_receipt(raw_hash)  # type: ignore[arg-type]
    except Exception as exc:  # web3 raises TransactionNotFound or transport errors
        raise BadInputError("bad_input", f"transaction {tx_hash} not found: {exc}") from None
    if tx.get("to") is None:
        raise BadInputError("not_a_fulfilment", f"{tx_hash} creates a contract")
    agent = to_checksum_address(str(tx["to"]))
    transactor = Transactor(chain)
    contract = transactor.contract("Agent", agent)
    try:
        fn, params = contract.decode_function_input(tx["input"])
    except ValueError:
        raise BadInputError("not_a_fulfilment", f"{tx_hash} is not a call to an Agent") from None
    if fn.fn_name not in ("fulfill", "fulfillBatch"):
        raise BadInputError("not_a_fulfilment", f"{tx_hash} calls {fn.fn_name}, not fulfill")
    events = [
        e
        for e in contract.events.Fulfilled().process_receipt(receipt, errors=DISCARD)
        if str(e["address"]).lower() == agent.lower()
    ]
    if not events:
        raise BadInputError("not_a_fulfilment", f"{tx_hash} emitted no Fulfilled event")
    calls = _calldata(fn.fn_name, params)
    measurement = bytes(transactor.call(contract.functions.measurement()))
    registry = to_checksum_address(str(transactor.call(contract.functions.registry())))
    block = w3.eth.get_block(receipt["blockNumber"])
    timestamp = int(block["timestamp"])
    doc.update(
        agent=agent,
        measurement="0x" + measurement.hex(),
        registry=registry,
        block_number=int(receipt["blockNumber"]),
        block_timestamp=timestamp,
    )
    fulfilments = []
    for event in events:
        rid = int(event["args"]["id"])
        input_hash, signature = calls.get(rid, (b"", None))
        fulfilments.append(
            _Fulfilment(
                rid,
                to_checksum_address(str(event["args"]["worker"])),
                input_hash,
                bytes(event["args"]["output"]),
                signature,
            )
        )
    doc["fulfilled_request_ids"] = [f.request_id for f in fulfilments]
    if request_id is not None:
        fulfilments = [f for f in fulfilments if f.request_id == request_id]
        if not fulfilments:
            raise BadInputError(
                "not_a_fulfilment", f"{tx_hash} does not fulfil request {request_id}"
            )
    doc["request_ids"] = ids = [f.request_id for f in fulfilments]
    workers = sorted({f.worker for f in fulfilments})
    shown = ", ".join(map(str, ids))
    _step(
        steps,
        "fulfilled",
        True,
        f"{len(events)} Fulfilled event(s) from {agent}; verifying {shown}",
    )
    _step(
        steps,
        "one_worker",
        len(workers) == 1,
        f"fulfilled by {', '.join(workers)}"
        + ("" if len(workers) == 1 else "; pass --request-id to verify one fulfilment"),
    )
    worker = workers[0]
    doc["worker"] = worker
    for f in fulfilments:
        recovered = _recover(chain, agent, f)
        _step(
            steps,
            f"signature[{f.request_id}]",
            recovered is not None and recovered.lower() == f.worker.lower(),
            f"recovers to {recovered}, event worker {f.worker}",
        )
    registry_contract = transactor.contract("WorkerRegistry", registry)
    reg = transactor.call(registry_contract.functions.registrationFor(worker, measurement))
    values = list(reg.values()) if isinstance(reg, dict) else list(reg)
    expires_at, quote_hash = int(values[1]), bytes(values[2])
    doc.update(registration_expires_at=expires_at, quote_hash="0x" + quote_hash.hex())
    _step(
        steps,
        "registration",
        expires_at > timestamp,
        f"registered for the measurement until {expires_at}, fulfilled at {timestamp}"
        if expires_at
        else "no registration for the agent's measurement",
    )
    return worker, quote_hash


def _calldata(name: str, params: dict[str, Any]) -> dict[int, tuple[bytes, bytes | None]]:
    """request id -> (inputHash, signature), from fulfill / fulfillBatch arguments."""
    items = [(params["id"], params["req"], params["signature"])] if name == "fulfill" else []
    for item in params.get("items", []) if name == "fulfillBatch" else []:
        values = list(item.values()) if isinstance(item, dict) else list(item)
        items.append((values[0], values[1], values[3]))
    out: dict[int, tuple[bytes, bytes | None]] = {}
    for rid, req, signature in items:
        fields = list(req.values()) if isinstance(req, dict) else list(req)
        out[int(rid)] = (bytes(fields[3]), bytes(signature))
    return out


def _recover(chain: Chain, agent: str, f: _Fulfilment) -> str | None:
    if f.signature is None:
        return None
    message = fulfillment_message(
        chain_id=chain.chain_id,
        agent=agent,
        request_id=f.request_id,
        input_hash=f.input_hash,
        output_hash=keccak(f.output),
    )
    try:
        return str(Account.recover_message(message, signature=f.signature))
    except (ValueError, TypeError):
        return None


def _quote_steps(
    worker: str,
    quote_hash: bytes,
    quote: Path | None,
    url: str | None,
    options: EvidenceOptions,
    steps: list[dict[str, str]],
    doc: dict[str, Any],
) -> None:
    now = datetime.fromtimestamp(options.at, UTC) if options.at is not None else datetime.now(UTC)
    if url is not None:
        att, nonce = fetch_attestation(url)
        raw = att.quote
    else:
        assert quote is not None
        try:
            raw = decode_quote_file(quote.read_bytes())
        except OSError as exc:
            raise BadInputError(
                "unreadable_input", f"cannot read quote file {quote}: {exc.strerror}"
            ) from None
        digest = hashlib.sha256(raw).digest()
        _step(
            steps,
            "quote_hash",
            digest == quote_hash,
            f"SHA-256(quote) {digest.hex()}, registered {quote_hash.hex()}",
        )
    rules = Policy.from_file(options.policy) if options.policy else Policy()
    if options.allow_simulated:
        rules = dataclasses.replace(rules, allow_simulated=True, allow_simulated_gpu=True)
    anchor = trust_anchor(options.root, simulated=options.allow_simulated, state=options.state)
    coll = choose_collateral(
        raw,
        collateral=options.collateral,
        pccs=options.pccs,
        cache_dir=options.cache_dir,
        local_simulator=url is not None
        and options.allow_simulated
        and options.pccs is None
        and not options.root,
        state=options.state,
        now=now,
    )
    verdict: Verdict = explain_quote(
        raw, coll, now=now, policy=rules, verifier=QuoteVerifier(anchor)
    )
    doc["quote"] = verdict.to_dict()
    _step(steps, "quote", verdict.accepted, "; ".join(verdict.reasons) or "accepted")
    if url is not None:
        same = att.address.lower() == worker.lower()
        _step(steps, "gateway_worker", same, f"gateway {att.address}, fulfilment worker {worker}")
        gpu_anchors = gpu_trust_anchors(options.allow_simulated, options.state)
        checks = gateway_checks(att, nonce, verdict, policy=rules, gpu_anchors=gpu_anchors, now=now)
        for name, result in checks.items():
            _step(steps, name, result["status"] == "pass", result["detail"])


def _print(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, sort_keys=True))
        return
    console = Console(highlight=False)
    console.print(f"tx {doc['tx']}: agent {doc.get('agent')}, worker {doc.get('worker')}")
    console.print(f"request(s) verified: {', '.join(map(str, doc.get('request_ids', [])))}")
    for s in doc["steps"]:
        mark = "[green]pass[/]" if s["status"] == "pass" else "[bold red]FAIL[/]"
        console.print(f"{s['step'] + ':':<16} {mark} ({s['detail']})")
    verdict = "[bold green]verified[/]" if doc["verified"] else "[bold red]NOT verified[/]"
    console.print(verdict)
