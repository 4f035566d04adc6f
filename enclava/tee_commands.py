"""`enclava quote` and `enclava sim ...`: produce evidence from this machine's TEE (or the
simulated TDX) for `enclava verify` and the attestation service."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from attestation.eventlog import events_to_json
from enclava import config
from enclava.output import BadInputError, fail
from enclave.errors import EnclaveError
from enclave.keys import EnclaveKeys
from enclave.tee.base import TeeBackend
from enclave.tee.detect import BACKEND_NAMES, detect
from enclave.tee.sim import SimulatedTdx

sim_app = typer.Typer(
    help="The simulated TDX machine of this state directory.", no_args_is_help=True
)

StateOption = Annotated[
    Path | None,
    typer.Option(help="State directory (simulated machine, sealed keys). Env: ENCLAVA_STATE_DIR."),
]


def quote(
    report_data: Annotated[
        str | None, typer.Option(help="REPORTDATA to quote: 64 bytes as hex.")
    ] = None,
    nonce: Annotated[
        str | None,
        typer.Option(help="Bind the worker's keys and this 32-byte hex nonce into REPORTDATA."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help=f"TEE backend: {', '.join(BACKEND_NAMES)} (default: detect).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the binary quote here.")] = None,
    event_log: Annotated[
        Path | None, typer.Option(help="Write the runtime event log (dstack JSON) here.")
    ] = None,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Write a quote from this machine's TEE (the simulated TDX when there is none)."""
    if (report_data is None) == (nonce is None):
        fail(as_json, "bad_usage", "pass exactly one of --report-data or --nonce")
    directory = config.state_dir(state)
    keys: EnclaveKeys | None = None
    try:
        tee = open_backend(backend, directory)
        if nonce is not None:
            keys = EnclaveKeys.load_or_create(tee, config.sealed_keys_path(directory))
            data = keys.report_data(_hex(nonce, 32, "--nonce"))
        else:
            data = _hex(report_data or "", 64, "--report-data")
        raw = tee.quote(data)
    except (EnclaveError, BadInputError) as exc:
        fail(as_json, exc.code, exc.message)
    events = events_to_json(tee.event_log())
    if out is not None:
        out.write_bytes(raw)
    if event_log is not None:
        event_log.write_text(json.dumps(events))
    doc = {"tee": tee.kind, "quote": raw.hex(), "report_data": data.hex(), "event_log": events}
    if keys is not None:
        doc |= {"address": keys.address, "x25519_public": keys.x25519_public.hex()}
    if as_json:
        print(json.dumps(doc, sort_keys=True))
    elif out is None:
        print(raw.hex())
    else:
        Console(highlight=False).print(f"wrote a {len(raw)}-byte {tee.kind} quote to {out}")


@sim_app.command("collateral")
def sim_collateral(
    out: Annotated[Path, typer.Option(help="Write the collateral JSON (samples' layout) here.")],
    root_out: Annotated[
        Path | None, typer.Option(help="Also write the simulator's root CA (PEM) here.")
    ] = None,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Write signed collateral for the simulated machine, issued now and valid 30 days."""
    now = datetime.now(UTC)
    sim = SimulatedTdx(config.sim_state_dir(config.state_dir(state)), now=now)
    collateral = sim.collateral(now=now)
    try:
        out.write_text(collateral.to_json())
        if root_out is not None:
            pem = sim.trust_anchor.certificate.public_bytes(serialization.Encoding.PEM)
            root_out.write_bytes(pem)
    except OSError as exc:
        fail(as_json, "unwritable_output", f"cannot write {exc.filename}: {exc.strerror}")
    if as_json:
        doc = {
            "collateral": str(out),
            "root": None if root_out is None else str(root_out),
            "trust_anchor": sim.trust_anchor.label,
            "issued": now.isoformat(),
            "valid_days": 30,
        }
        print(json.dumps(doc, sort_keys=True))
        return
    Console(highlight=False).print(
        f"wrote collateral for {sim.trust_anchor.label} to {out} (valid 30 days)"
    )


def _hex(value: str, size: int, option: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise BadInputError("bad_usage", f"{option} is not hex") from None
    if len(raw) != size:
        raise BadInputError("bad_usage", f"{option} must be {size} bytes, got {len(raw)}")
    return raw


def open_backend(name: str | None, state: Path) -> TeeBackend:
    if name is not None and name not in BACKEND_NAMES:
        raise BadInputError("bad_usage", f"--backend must be one of {', '.join(BACKEND_NAMES)}")
    sim_dir = config.sim_state_dir(state)
    return detect(prefer=name, sim_factory=lambda: SimulatedTdx(sim_dir, now=datetime.now(UTC)))
