"""The `enclava` command line. Thin: parses arguments, calls the packages, renders results.

Exit status everywhere: 0 accepted / success, 1 rejected (verification or policy),
2 unreadable or malformed input, or bad usage.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agents.bundle import measure as measure_bundle
from agents.errors import AgentError
from attestation import Policy, QuoteVerifier
from attestation.errors import AttestationError
from attestation.quote import decode_quote_file
from attestation.verdict import Verdict, explain_quote
from enclava import render
from enclava.attest_commands import attest_app
from enclava.bundle_verify import BundleOptions, verify_bundle_file
from enclava.call_commands import call, fetch_attestation, gateway_checks
from enclava.chain_commands import call_chain, deploy, deploy_stack
from enclava.demo import simulated_worker, verify_samples
from enclava.dev_commands import dev
from enclava.evidence import choose_collateral, gpu_trust_anchors, trust_anchor
from enclava.gateway_commands import gateway_app
from enclava.output import EXIT_ACCEPTED, EXIT_BAD_INPUT, EXIT_REJECTED, BadInputError, fail
from enclava.tee_commands import quote, sim_app
from enclava.tx_verify import EvidenceOptions, verify_tx
from enclava.worker_commands import worker_app
from enclava.zk_verify import verify_zk
from enclave.errors import EnclaveError

app = typer.Typer(
    help="Enclava: attested AI agents on TEEs, verifiable from the command line.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """Enclava command line."""


app.command()(quote)
app.add_typer(sim_app, name="sim")
app.add_typer(attest_app, name="attest")
app.add_typer(gateway_app, name="gateway")
app.add_typer(worker_app, name="worker")
app.command()(call)
app.command()(dev)
app.command("deploy-stack")(deploy_stack)
app.command()(deploy)
app.command("call-chain", hidden=True, deprecated=True)(call_chain)


@app.command()
def verify(
    quote: Annotated[
        Path | None, typer.Argument(help="Quote file: binary, or hex text (0x optional).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Verify this gateway's live attestation instead of a quote file."),
    ] = None,
    collateral: Annotated[
        Path | None, typer.Option(help="Collateral JSON (dcap-qvl / PCCS QuoteCollateralV3).")
    ] = None,
    pccs: Annotated[
        str | None,
        typer.Option(help="Fetch collateral from this PCCS / PCS base URL (default: Intel PCS)."),
    ] = None,
    at: Annotated[
        int | None, typer.Option(help="Verify at this Unix time (default: now).", min=0)
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy file (TOML or JSON).")] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="Trust this root CA (DER/PEM) instead of Intel's, e.g. a simulator's."),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Collateral cache directory for --pccs / Intel PCS.")
    ] = None,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            help="Accept a simulated TEE: trust the local simulator's root unless --root is given."
        ),
    ] = False,
    state: Annotated[
        Path | None, typer.Option(help="State directory of the local simulator.")
    ] = None,
    tx: Annotated[
        str | None,
        typer.Option(
            help="Verify a past on-chain answer: this fulfilment transaction (needs --rpc-url)."
        ),
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option(help="With --tx: JSON-RPC URL of the chain.")
    ] = None,
    request_id: Annotated[
        int | None,
        typer.Option(help="With --tx: verify only this request's fulfilment, not all.", min=0),
    ] = None,
    zk: Annotated[
        Path | None,
        typer.Option(
            help="Verify this RISC Zero receipt of a DCAP verification (needs --image-id)."
        ),
    ] = None,
    image_id: Annotated[
        str | None, typer.Option(help="With --zk: the trusted guest program's image ID (hex).")
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="Verify an attestation bundle (a gateway's /v1/attestation JSON: quote, event "
            "log, GPU reports) for --nonce, one result per device."
        ),
    ] = None,
    bundle_nonce: Annotated[
        str | None,
        typer.Option("--nonce", help="With --bundle: the 32-byte nonce you asked it for (hex)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Verify an Intel DCAP quote (SGX v3, TDX v4/v5) and apply a policy. With --url: a gateway's
    attestation for a fresh nonce, its REPORTDATA binding and its event log too. With --tx: a past
    fulfilment, its signer's registration and that worker's quote (QUOTE or --url). With --zk: a
    RISC Zero receipt proving a DCAP verification, judged by the same policy. With --bundle: a
    saved attestation bundle (TDX + GPUs) for --nonce."""
    if zk is not None:
        conflicting = quote is not None or url is not None or tx is not None
        verify_zk(
            zk, image_id, policy=policy, at=at, root=root, conflicting=conflicting, as_json=as_json
        )
    if bundle is not None:
        if quote is not None or url is not None or tx is not None:
            fail(as_json, "bad_usage", "--bundle takes no QUOTE, --url or --tx")
        options = BundleOptions(
            collateral, pccs, cache_dir, at, policy, root, allow_simulated, state
        )
        verify_bundle_file(bundle, bundle_nonce, options, as_json)
    if tx is not None:
        opts = EvidenceOptions(
            collateral, pccs, at, policy, root, cache_dir, allow_simulated, state
        )
        verify_tx(tx, rpc_url, quote, url, opts, as_json, request_id)
    console = Console(stderr=False, highlight=False)
    now = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
    extra: dict[str, dict[str, str]] = {}
    try:
        if collateral is not None and pccs is not None:
            raise BadInputError("bad_usage", "pass either --collateral or --pccs, not both")
        if (quote is None) == (url is None):
            raise BadInputError("bad_usage", "pass exactly one of QUOTE / --url")
        if url is not None:
            att, nonce = fetch_attestation(url)
            raw = att.quote
        else:
            assert quote is not None
            raw = _read_quote(quote)
        loaded_policy = Policy.from_file(policy) if policy else Policy()
        if allow_simulated:
            loaded_policy = dataclasses.replace(
                loaded_policy, allow_simulated=True, allow_simulated_gpu=True
            )
        anchor = trust_anchor(root, simulated=allow_simulated, state=state)
        coll = choose_collateral(
            raw,
            collateral=collateral,
            pccs=pccs,
            cache_dir=cache_dir,
            local_simulator=url is not None and allow_simulated and pccs is None and root is None,
            state=state,
            now=now,
        )
        verdict = explain_quote(
            raw, coll, now=now, policy=loaded_policy, verifier=QuoteVerifier(anchor)
        )
        if url is not None:
            gpu_anchors = gpu_trust_anchors(allow_simulated, state)
            extra = gateway_checks(
                att, nonce, verdict, policy=loaded_policy, gpu_anchors=gpu_anchors, now=now
            )
            failed = [f"{k}: {v['detail']}" for k, v in extra.items() if v["status"] == "fail"]
            if failed:
                verdict = dataclasses.replace(
                    verdict, accepted=False, reasons=(*verdict.reasons, *failed)
                )
    except BadInputError as exc:
        fail(as_json, exc.code, exc.message, fields=_unverified(exc.message))
    except (AttestationError, EnclaveError) as exc:
        fail(as_json, exc.code, exc.message, fields=_unverified(exc.message))
    _emit(console, verdict, url or (quote.name if quote else ""), as_json, extra)
    raise typer.Exit(_exit_code(verdict))


@app.command()
def measure(
    bundle: Annotated[
        Path | None, typer.Argument(help="Agent bundle directory (with agent.toml).")
    ] = None,
    compose: Annotated[
        Path | None,
        typer.Option(
            help="Instead: the dstack compose hash of this app-compose.json or docker-compose.yml."
        ),
    ] = None,
    app_compose_out: Annotated[
        Path | None, typer.Option(help="With --compose: write the hashed app-compose.json here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print an agent bundle's SHA-384 measurement (what its contract pins, what RTMR3 gets),
    or with --compose the compose hash a dstack CVM reports (see enclava.compose_commands)."""
    if (bundle is None) == (compose is None):
        fail(as_json, "bad_usage", "pass exactly one of BUNDLE / --compose")
    if compose is not None:
        from enclava.compose_commands import measure_compose  # imports yaml: only on demand

        measure_compose(compose, app_compose_out, as_json)
        return
    assert bundle is not None
    try:
        measured = measure_bundle(bundle)
    except AgentError as exc:
        fail(as_json, exc.code, str(exc))
    if as_json:
        files = [
            {"path": f.path, "mode": f.mode, "size": f.size, "sha256": f.sha256.hex()}
            for f in measured.files
        ]
        print(json.dumps({"measurement": measured.hex, "files": files}, sort_keys=True))
    else:
        print(measured.hex)


@app.command()
def demo(
    samples: Annotated[
        Path, typer.Option(help="Folder of DCAP samples (quotes + collateral).")
    ] = Path("tests/data/attestation-samples"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Verify every real sample quote at its collateral's time and print the verdict table."""
    console = Console(highlight=False)
    try:
        rows = [*verify_samples(samples), simulated_worker(datetime.now(UTC))]
    except OSError as exc:
        fail(as_json, "bad_input", f"cannot read samples: {exc}")
    if as_json:
        print(json.dumps({name: v.to_dict() for name, v in rows}, sort_keys=True))
    else:
        render.sample_table(console, rows)


def _unverified(reason: str) -> dict[str, object]:
    return {"verified": False, "accepted": False, "reasons": [reason]}


def _read_quote(path: Path) -> bytes:
    try:
        return decode_quote_file(path.read_bytes())
    except OSError as exc:
        raise BadInputError(
            "unreadable_input", f"cannot read quote file {path}: {exc.strerror}"
        ) from None


def _exit_code(verdict: Verdict) -> int:
    if verdict.accepted:
        return EXIT_ACCEPTED
    return EXIT_BAD_INPUT if verdict.malformed else EXIT_REJECTED


def _emit(
    console: Console, verdict: Verdict, name: str, as_json: bool, extra: dict[str, dict[str, str]]
) -> None:
    """`extra`: verify --url's `binding` and `event_log` results."""
    if as_json:
        print(json.dumps({**verdict.to_dict(), **extra}, sort_keys=True))
        return
    render.verdict(console, verdict, name)
    for check, result in extra.items():
        console.print(f"{check + ':':<12} {result['status']} ({result['detail']})")
