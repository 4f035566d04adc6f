"""dstack's compose hash: what a dstack CVM (Phala Cloud) measures into RTMR3 about its app.

The definition (Dstack-TEE/dstack, `dstack-util/src/system_setup.rs`, `measure_app_info`): at
boot the CVM takes the `app-compose.json` file it was given and computes
`compose_hash = SHA-256(the file's bytes)`, byte for byte, with no parsing or normalisation; it
then emits the RTMR3 runtime events `app-id` (the KMS-assigned app id, or the first 20 bytes of
the compose hash without a KMS) and `compose-hash`, whose payload is the 32 raw digest bytes.
dstack-vmm's `GetComposeHash` RPC is the same SHA-256 over the submitted string. So a relying
party pins the hash of the exact bytes that were deployed: `compose_hash`.

Those bytes come from tooling. Phala Cloud and dstack's SDKs (`get_compose_hash` in dstack-sdk
for JS, Python and Rust) serialise the app-compose object as deterministic JSON: object keys
sorted recursively (JS `sort()` order: UTF-16 code units), no whitespace, UTF-8 with non-ASCII
characters unescaped. `canonical_app_compose` is that serialisation, so
`compose_hash(canonical_app_compose(doc))` equals the SDKs' `get_compose_hash(doc)`.
`app_compose_for` wraps a docker-compose file into the app-compose shape of dstack-vmm's
`vmm-cli.py compose` (manifest version 2, runner `docker-compose`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attestation import safejson
from attestation.errors import ComposeFormatError, EventLogError
from attestation.eventlog import RUNTIME_EVENT_TYPE, RuntimeEvent

__all__ = [
    "APP_ID_EVENT",
    "COMPOSE_HASH_EVENT",
    "COMPOSE_HASH_SIZE",
    "AppComposeOptions",
    "ComposeFormatError",
    "app_compose_for",
    "canonical_app_compose",
    "check_compose_hash",
    "compose_hash",
    "measured_compose_hash",
]

COMPOSE_HASH_EVENT = "compose-hash"
APP_ID_EVENT = "app-id"
COMPOSE_HASH_SIZE = 32


def compose_hash(app_compose: bytes) -> bytes:
    """The 32-byte compose hash a dstack CVM reports for exactly these app-compose.json bytes.

    Like dstack-vmm, refuses bytes that are not UTF-8 JSON holding an object with a string
    `runner` (`ComposeFormatError`): such a file never boots, so its hash pins nothing."""
    try:
        doc = safejson.loads(app_compose.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ComposeFormatError(f"app-compose is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("runner"), str):
        raise ComposeFormatError("app-compose must be a JSON object with a string 'runner'")
    return hashlib.sha256(app_compose).digest()


def canonical_app_compose(doc: Mapping[str, Any]) -> bytes:
    """`doc` as the deterministic JSON of Phala Cloud and dstack's SDKs (see the module doc).

    Numbers must be integers: JSON floats print differently in JS and Python, so a float has
    no single canonical form (`ComposeFormatError`), nor does text with a lone surrogate."""
    try:
        text = json.dumps(_sorted(doc), separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ComposeFormatError("app-compose text holds a lone surrogate") from None


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        keys = sorted(value, key=_js_order)
        return {key: _sorted(value[key]) for key in keys}
    if isinstance(value, list | tuple):
        return [_sorted(item) for item in value]
    if isinstance(value, float):
        raise ComposeFormatError(f"app-compose numbers must be integers, not {value!r}")
    if value is None or isinstance(value, str | int | bool):
        return value
    raise ComposeFormatError(f"app-compose cannot hold a {type(value).__name__}")


def _js_order(key: object) -> bytes:
    if not isinstance(key, str):
        raise ComposeFormatError(f"app-compose keys are text, not {key!r}")
    return key.encode("utf-16-be", "surrogatepass")


@dataclass(frozen=True, slots=True)
class AppComposeOptions:
    """The dstack switches of a wrapped docker-compose file (fields of dstack's AppCompose).

    `allowed_envs` names the encrypted environment variables the CVM may receive: anything
    else is dropped, so the measured file also bounds what the operator can inject."""

    name: str
    kms_enabled: bool = True
    gateway_enabled: bool = True
    local_key_provider_enabled: bool = False
    public_logs: bool = True
    public_sysinfo: bool = True
    no_instance_id: bool = False
    secure_time: bool = True
    allowed_envs: Sequence[str] = ()


def app_compose_for(docker_compose: str, options: AppComposeOptions) -> dict[str, Any]:
    """The app-compose object that runs `docker_compose` (the YAML text, verbatim) in dstack.

    Serialise it with `canonical_app_compose` and deploy those bytes unchanged: the compose
    hash covers every byte, so re-encoding the file changes what the CVM reports."""
    if not options.name:
        raise ComposeFormatError("an app-compose needs a non-empty name")
    return {
        "manifest_version": 2,
        "name": options.name,
        "runner": "docker-compose",
        "docker_compose_file": docker_compose,
        "kms_enabled": options.kms_enabled,
        "gateway_enabled": options.gateway_enabled,
        "local_key_provider_enabled": options.local_key_provider_enabled,
        "public_logs": options.public_logs,
        "public_sysinfo": options.public_sysinfo,
        "allowed_envs": list(options.allowed_envs),
        "no_instance_id": options.no_instance_id,
        "secure_time": options.secure_time,
    }


def measured_compose_hash(events: Iterable[RuntimeEvent]) -> bytes:
    """The compose hash a dstack event log measured: its one RTMR3 `compose-hash` runtime event
    (whose digest must be the one its payload gives); `EventLogError` otherwise. This trusts the
    log's events: replay it against the quoted RTMR3 (`check_rtmrs`) too."""
    found = [
        (index, event)
        for index, event in enumerate(events)
        if event.event_type == RUNTIME_EVENT_TYPE and event.event == COMPOSE_HASH_EVENT
    ]
    if len(found) != 1:
        raise EventLogError(f"the event log has {len(found)} compose-hash events, not one")
    index, event = found[0]
    if event.imr != 3 or not event.digest_matches_content:
        raise EventLogError(f"event {index}: compose-hash is not a valid RTMR3 runtime event")
    if len(event.payload) != COMPOSE_HASH_SIZE:
        raise EventLogError(f"event {index}: a compose hash is 32 bytes")
    return event.payload


def check_compose_hash(events: Iterable[RuntimeEvent], expected: bytes) -> None:
    """Check that a dstack event log measured the app-compose whose hash is `expected`
    (`measured_compose_hash`); `EventLogError` otherwise."""
    if len(expected) != COMPOSE_HASH_SIZE:
        raise ValueError("a compose hash is a 32-byte SHA-256")
    measured = measured_compose_hash(events)
    if measured != expected:
        raise EventLogError(
            f"the CVM measured compose hash {measured.hex()}, not the pinned {expected.hex()}"
        )
