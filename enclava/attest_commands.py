"""`enclava attest serve`: run the attestation service (see `attestation.service`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from attestation.service import (
    ServiceKeys,
    ServiceSettings,
    backend_attestor,
    create_app,
    simulator_domain,
)
from attestation.service.errors import KeyFileError
from attestation.service.server import load_keys, serve
from enclava import config
from enclava.logs import LogFormat, LogFormatOption, LogLevel, LogLevelOption, configure_logging
from enclava.output import fail
from enclave.tee.sim import SimulatedTdx

attest_app = typer.Typer(help="The attestation service.", no_args_is_help=True)


@attest_app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="Service config (TOML or JSON).")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help="Signing keys (JWT ES256 + EIP-712 secp256k1).")
    ] = None,
    new_key_file: Annotated[
        bool, typer.Option(help="Create --key-file with fresh keys first (mode 0600).")
    ] = False,
    dev: Annotated[
        bool,
        typer.Option(help="Development mode: trust this machine's simulated TEE (never in prod)."),
    ] = False,
    state: Annotated[
        Path | None, typer.Option(help="State directory of the local simulator (with --dev).")
    ] = None,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (costs verify throughput).")
    ] = False,
    log_format: LogFormatOption = LogFormat.TEXT,
    log_level: LogLevelOption = LogLevel.INFO,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the boot summary as one JSON line.")
    ] = False,
) -> None:
    """Serve POST /v1/verify, tokens, EIP-712 verdicts, JWKS, metrics until interrupted."""
    configure_logging(log_format, log_level)
    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "config_file": config_file,
        "key_file": key_file,
        "dev": dev or None,
    }
    try:
        settings = ServiceSettings(**{k: v for k, v in overrides.items() if v is not None})
        if new_key_file:
            if settings.key_file is None:
                raise ValueError("--new-key-file needs --key-file")
            ServiceKeys.generate().save(settings.key_file)
        keys = load_keys(settings)
    except KeyFileError as exc:
        fail(as_json, exc.code, exc.message)
    except ValueError as exc:
        fail(as_json, "bad_configuration", str(exc))
    domains, attestor = [], None
    if settings.dev:
        sim = SimulatedTdx(config.sim_state_dir(config.state_dir(state)), now=datetime.now(UTC))
        domains, attestor = [simulator_domain(sim)], backend_attestor(sim)
    if as_json:
        summary = {
            "url": f"http://{settings.host}:{settings.port}",
            "signer": keys.eip712.address,
            "dev": settings.dev,
            "workers": settings.workers,
        }
        print(json.dumps(summary, sort_keys=True), flush=True)
    serve(
        settings,
        lambda: create_app(settings, signing=keys, self_attestation=attestor, dev_domains=domains),
        access_log=access_log,
    )
