"""`enclava verify --bundle FILE --nonce HEX`: an attestation bundle (TDX quote + event log + GPU
reports, as a gateway's `GET /v1/attestation` returns it) verified offline as a whole, one result
per device (`attestation.evidence.verify_bundle`).

The nonce is the verifier's own (the one it sent): the quote's REPORTDATA and every GPU's SPDM
nonce (`gpu_nonce(nonce)`) must answer it, so a bundle recorded for another verifier or another
time is rejected. A failed DCAP check of the quote is a rejection with the check named; other
problems (policy, binding, event log, a GPU) are reasons of the one decision.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from attestation import Policy
from attestation.bundle import EvidenceBundle
from attestation.errors import AttestationError, VerificationError
from attestation.evidence import VerifiedBundle, verify_bundle
from attestation.safejson import loads as safe_loads
from enclava.evidence import choose_collateral, gpu_trust_anchors, trust_anchor
from enclava.output import EXIT_ACCEPTED, EXIT_REJECTED, BadInputError, fail

__all__ = ["BundleOptions", "verify_bundle_file"]


@dataclasses.dataclass(frozen=True)
class BundleOptions:
    """`enclava verify`'s evidence options, as `--bundle` uses them."""

    collateral: Path | None
    pccs: str | None
    cache_dir: Path | None
    at: int | None
    policy: Path | None
    root: Path | None
    allow_simulated: bool
    state: Path | None


def verify_bundle_file(
    path: Path, nonce: str | None, options: BundleOptions, as_json: bool
) -> NoReturn:
    """Verify the bundle in `path` for `nonce` (hex) and exit 0 accepted / 1 rejected /
    2 unusable input."""
    now = datetime.fromtimestamp(options.at, UTC) if options.at is not None else datetime.now(UTC)
    try:
        expected = _nonce(nonce)
        bundle = EvidenceBundle.from_json(_read_json(path))
        rules = Policy.from_file(options.policy) if options.policy else Policy()
        if options.allow_simulated:
            rules = dataclasses.replace(rules, allow_simulated=True, allow_simulated_gpu=True)
        anchor = trust_anchor(options.root, simulated=options.allow_simulated, state=options.state)
        verified = verify_bundle(
            bundle,
            nonce=expected,
            collateral=choose_collateral(
                bundle.quote,
                collateral=options.collateral,
                pccs=options.pccs,
                cache_dir=options.cache_dir,
                local_simulator=options.allow_simulated
                and options.pccs is None
                and options.root is None,
                state=options.state,
                now=now,
            ),
            now=now,
            cpu_trust_anchor=anchor,
            gpu_trust_anchors=gpu_trust_anchors(options.allow_simulated, options.state),
            policy=rules,
        )
    except VerificationError as exc:
        _rejected(as_json, exc)
    except (BadInputError, AttestationError) as exc:
        fail(as_json, exc.code, exc.message, fields={"verified": False, "accepted": False})
    _emit(verified, path, as_json)
    raise typer.Exit(EXIT_ACCEPTED if verified.accepted else EXIT_REJECTED)


def _nonce(text: str | None) -> bytes:
    if text is None:
        raise BadInputError("bad_usage", "--bundle needs --nonce: the 32-byte nonce you sent")
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise BadInputError("bad_usage", "--nonce is not hex") from None
    if len(value) != 32:
        raise BadInputError("bad_usage", f"--nonce must be 32 bytes, got {len(value)}")
    return value


def _read_json(path: Path) -> Any:
    try:
        return safe_loads(path.read_bytes())
    except OSError as exc:
        raise BadInputError("unreadable_input", f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise BadInputError("unreadable_input", f"{path} is not JSON: {exc}") from None


def _rejected(as_json: bool, exc: VerificationError) -> NoReturn:
    doc = {"verified": False, "accepted": False, "reasons": [exc.message], "check": exc.check}
    if as_json:
        print(json.dumps({**doc, "error": exc.to_dict()}, sort_keys=True))
    else:
        Console(highlight=False).print(f"[bold red]REJECTED[/]: {exc.check}: {exc.message}")
    raise typer.Exit(EXIT_REJECTED)


def _emit(v: VerifiedBundle, path: Path, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"verified": True, **v.to_dict()}, sort_keys=True))
        return
    console = Console(highlight=False)
    cpu = v.cpu
    tee = "simulated " + cpu.tee if cpu.simulated else cpu.tee
    console.print(f"bundle {path.name}: {tee} quote, TCB {cpu.tcb_status}, {len(v.gpus)} GPU(s)")
    for gpu in v.gpus:
        if gpu.verified is not None:
            facts = gpu.verified
            mark = "[green]ok[/]" if gpu.accepted else "[red]refused[/]"
            cc = "on" if gpu.evidence.cc_state.enabled else "off"
            console.print(
                f"  gpu[{gpu.index}] {mark} {facts.model} driver {facts.driver_version}, "
                f"FWID {facts.fwid.hex()[:16]}…, CC {cc}"
            )
        else:
            console.print(f"  gpu[{gpu.index}] [red]failed[/]: {'; '.join(gpu.reasons)}")
    for agent in v.agents:
        console.print(f"  agent {agent.name} {agent.version}: {agent.bundle_digest.hex()[:32]}…")
    for relaxation in v.decision.relaxations:
        console.print(f"  [yellow]relaxed[/]: {relaxation}")
    if v.accepted:
        console.print("[bold green]ACCEPTED[/]")
    else:
        console.print("[bold red]REJECTED[/]: " + "; ".join(v.decision.reasons))
