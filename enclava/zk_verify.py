"""`enclava verify --zk RECEIPT --image-id ID`: a DCAP verification proven by a RISC Zero receipt.

The receipt's Groth16 proof is verified here (no chain, no network), its journal decoded into
the facts of a quote verification and judged by the same `Policy` as `enclava verify QUOTE`.
Exit status as for every `verify`: 0 accepted, 1 rejected, 2 unreadable input or bad usage.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from attestation import Policy
from attestation.errors import AttestationError
from attestation.zk import Receipt, ZkVerdict, explain_receipt
from attestation.zk.native import LIBRARY_ENV, choose_verifier
from enclava.evidence import trust_anchor
from enclava.output import (
    EXIT_ACCEPTED,
    EXIT_BAD_INPUT,
    EXIT_REJECTED,
    BadInputError,
    fail,
    progress,
)
from enclava.render import OUTCOME_STYLE

__all__ = ["verify_zk"]


def verify_zk(
    receipt_path: Path,
    image_id: str | None,
    *,
    policy: Path | None,
    at: int | None,
    root: Path | None,
    conflicting: bool,
    as_json: bool,
) -> NoReturn:
    """`conflicting`: another evidence source (QUOTE, --url, --tx) was given as well."""
    now = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
    try:
        if conflicting:
            raise BadInputError("bad_usage", "--zk takes no QUOTE, --url or --tx")
        pinned = _image_id(image_id)
        receipt = Receipt.from_json(_read(receipt_path))
        loaded_policy = Policy.from_file(policy) if policy else Policy()
        anchor = trust_anchor(root, simulated=False, state=None)
    except BadInputError as exc:
        fail(as_json, exc.code, exc.message, fields=_unverified(exc.message))
    except AttestationError as exc:
        fail(as_json, exc.code, exc.message, fields=_unverified(exc.message))
    choice = choose_verifier(os.environ.get(LIBRARY_ENV) or None)
    with progress("verifying the receipt's Groth16 proof", as_json):
        verdict = explain_receipt(
            receipt,
            image_id=pinned,
            now=now,
            policy=loaded_policy,
            trust_anchor=anchor,
            verifier=choice.verifier,
        )
    fallback = choice.native_unavailable
    proof = {
        "proof_verifier": "native" if choice.native else "py_ecc",
        "native_unavailable": fallback.message if fallback else None,
    }
    if as_json:
        print(json.dumps(verdict.to_dict() | proof, sort_keys=True))
    else:
        console = Console(highlight=False)
        render_zk_verdict(console, verdict, receipt_path.name)
        why = f" (native library: {fallback.message})" if fallback else ""
        console.print(f"[dim]proof checked by {proof['proof_verifier']}{why}[/]")
    if verdict.accepted:
        raise typer.Exit(EXIT_ACCEPTED)
    raise typer.Exit(EXIT_BAD_INPUT if verdict.malformed else EXIT_REJECTED)


def render_zk_verdict(console: Console, v: ZkVerdict, name: str) -> None:
    """Like `render.verdict`, with the receipt's facts in place of the quote's."""
    vd = v.verified_dcap
    console.print(f"[bold]{name}[/]: {v.source}")
    if vd is not None:
        tee = vd.journal.tee.upper()
        console.print(f"tee:         [bold]{f'simulated ({tee})' if vd.simulated else tee}[/]")
        params = vd.receipt.parameters
        console.print(f"verifier:    {params.version} (selector {params.selector.hex()})")
        console.print(f"claim:       {vd.receipt.claim_digest.hex()}")
    checks = Table(title="zk receipt checks")
    for column in ("check", "outcome", "what / why"):
        checks.add_column(column)
    for c in v.checks:
        checks.add_row(c.name, OUTCOME_STYLE[c.outcome], c.detail or c.description)
    console.print(checks)
    if vd is not None:
        j = vd.journal
        console.print(f"Quote:       v{j.quote_version}, verified at {j.verified_at.isoformat()}")
        console.print(f"TCB status:  [bold]{j.tcb_status}[/]")
        console.print(f"Advisories:  {', '.join(j.advisory_ids) or 'none'}")
        console.print(f"FMSPC:       {j.fmspc}")
        console.print(f"Trust root:  {vd.trust_anchor}")
        _pairs(console, "Measurements", j.measurements)
        _pairs(console, "Collateral (hashes)", j.collateral.to_dict())
    if v.decision is not None:
        for relaxation in v.decision.relaxations:
            console.print(f"[yellow]relaxed:[/] {relaxation}")
    if v.accepted:
        console.print("[bold green]ACCEPTED[/]")
        return
    console.print(f"[bold red]{'MALFORMED' if v.malformed else 'REJECTED'}[/]")
    for reason in v.reasons:
        console.print(f"  - {reason}")


def _pairs(console: Console, title: str, rows: dict[str, str]) -> None:
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table)


def _image_id(text: str | None) -> bytes:
    if text is None:
        raise BadInputError("bad_usage", "--zk needs --image-id (the guest program to trust)")
    value = text.strip().lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise BadInputError("bad_usage", f"--image-id {text!r} is not hex") from None
    if len(raw) != 32:
        raise BadInputError("bad_usage", f"--image-id must be 32 bytes, got {len(raw)}")
    return raw


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        message = f"cannot read receipt file {path}: {exc.strerror}"
        raise BadInputError("unreadable_input", message) from None


def _unverified(reason: str) -> dict[str, object]:
    return {"verified": False, "accepted": False, "reasons": [reason]}
