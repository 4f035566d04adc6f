"""`python -m attestation.service`: run the service from a config file and the environment.

    python -m attestation.service [--config FILE] [--host H] [--port P] [--workers N]
                                  [--key-file PATH] [--new-key-file]

Outside a TEE there is no self-attestation here; `enclava attest serve` wires the TEE backend
(its sealed keys and its quotes) when it runs in one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from attestation.errors import AttestationError
from attestation.service.app import create_app
from attestation.service.keys import ServiceKeys
from attestation.service.server import load_keys, serve
from attestation.service.settings import ServiceSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attestation.service", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML or JSON settings file")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--key-file", type=Path)
    parser.add_argument(
        "--new-key-file", action="store_true", help="create --key-file with fresh keys first"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("config_file", args.config),
            ("host", args.host),
            ("port", args.port),
            ("workers", args.workers),
            ("key_file", args.key_file),
        )
        if value is not None
    }
    try:
        settings = ServiceSettings(**overrides)
        if args.new_key_file:
            if settings.key_file is None:
                parser.error("--new-key-file needs --key-file")
            ServiceKeys.generate().save(settings.key_file)
        keys = load_keys(settings)
    except (ValueError, AttestationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"attestation service on http://{settings.host}:{settings.port} "
        f"(signer {keys.eip712.address}, {settings.workers} worker(s))",
        file=sys.stderr,
    )
    serve(settings, lambda: create_app(settings, signing=keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
