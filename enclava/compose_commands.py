"""`enclava measure --compose FILE`: the compose hash a dstack CVM will report for an app.

FILE is either an `app-compose.json` (any file ending in `.json`), hashed byte for byte as the
CVM does, or a docker-compose YAML file, which is first wrapped into an app-compose the way
dstack-vmm's `vmm-cli.py compose` does (see `attestation.compose.app_compose_for`) and
serialised canonically, as Phala Cloud and dstack's SDKs do. The wrapper takes the app name
from the YAML's top-level `name` (default `enclava`) and allows, as encrypted environment
variables, exactly the `${VAR}` names the YAML interpolates. Deploy the wrapped bytes
(`--app-compose-out`) unchanged: any other encoding of the same object has another hash.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from attestation.compose import (
    AppComposeOptions,
    ComposeFormatError,
    app_compose_for,
    canonical_app_compose,
    compose_hash,
)
from enclava.output import BadInputError, fail

__all__ = ["DEFAULT_APP_NAME", "measure_compose", "wrap_docker_compose"]

DEFAULT_APP_NAME = "enclava"
_INTERPOLATED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def wrap_docker_compose(text: str) -> bytes:
    """The canonical app-compose.json bytes that run this docker-compose YAML in dstack."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInputError("malformed_docker_compose", f"not YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise BadInputError("malformed_docker_compose", "a docker-compose file needs services")
    name = doc.get("name", DEFAULT_APP_NAME)
    if not isinstance(name, str):
        raise BadInputError("malformed_docker_compose", "the top-level name must be text")
    envs = sorted(set(_INTERPOLATED.findall(text)))
    options = AppComposeOptions(name=name, allowed_envs=envs)
    return canonical_app_compose(app_compose_for(text, options))


def measure_compose(path: Path, app_compose_out: Path | None, as_json: bool) -> None:
    """Print the compose hash of `path` (hex, or one JSON object with `--json`)."""
    try:
        raw = _read(path)
        wrapped = path.suffix != ".json"
        app_compose = wrap_docker_compose(raw.decode("utf-8")) if wrapped else raw
        digest = compose_hash(app_compose)
        if app_compose_out is not None:
            _write(app_compose_out, app_compose)
    except UnicodeDecodeError:
        fail(as_json, "malformed_docker_compose", f"{path} is not UTF-8 text")
    except BadInputError as exc:
        fail(as_json, exc.code, exc.message)
    except ComposeFormatError as exc:
        fail(as_json, exc.code, exc.message)
    if as_json:
        doc = {
            "compose_hash": digest.hex(),
            "source": "docker-compose" if wrapped else "app-compose",
            "app_compose_bytes": len(app_compose),
        }
        print(json.dumps(doc, sort_keys=True))
    else:
        print(digest.hex())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInputError("unreadable_input", f"cannot read {path}: {exc.strerror}") from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise BadInputError("unwritable_output", f"cannot write {path}: {exc.strerror}") from None
