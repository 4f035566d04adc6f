"""Runtime event logs: what a TEE extended into its RTMRs, replayed to the quoted values.

Runtime events use dstack's encoding, so dstack's verifier and ours read the same log:
`digest = SHA-384(event_type as u32 little-endian || ":" || name || ":" || payload)` with event
type 0x08000001, extended as `RTMR = SHA-384(RTMR || digest)` from 48 zero bytes. The JSON form
is dstack's: `{"imr", "event_type", "digest", "event", "event_payload"}` (hex strings).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from attestation import safejson
from attestation.errors import EventLogError

__all__ = [
    "AGENT_EVENT",
    "RUNTIME_EVENT_TYPE",
    "AgentMeasurement",
    "RuntimeEvent",
    "agent_event",
    "agent_events",
    "check_rtmrs",
    "events_from_json",
    "events_to_json",
    "extend",
    "replay",
]

RUNTIME_EVENT_TYPE = 0x08000001
AGENT_EVENT = "enclava.agent"
RTMR_SIZE = 48
_ZERO = bytes(RTMR_SIZE)


def extend(register: bytes, digest: bytes) -> bytes:
    """One RTMR extension: SHA-384(register || digest)."""
    return hashlib.sha384(register + digest).digest()


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    """One event of a runtime event log. `digest` is what was extended into RTMR `imr`."""

    imr: int
    event_type: int
    digest: bytes
    event: str
    payload: bytes

    @classmethod
    def create(cls, name: str, payload: bytes, *, imr: int = 3) -> RuntimeEvent:
        """A runtime event whose digest is derived from its name and payload (dstack's rule)."""
        return cls(imr, RUNTIME_EVENT_TYPE, runtime_digest(name, payload), name, payload)

    @property
    def digest_matches_content(self) -> bool:
        """For runtime events, the digest must be the one its name and payload give."""
        if self.event_type != RUNTIME_EVENT_TYPE:
            return True
        return self.digest == runtime_digest(self.event, self.payload)


def runtime_digest(name: str, payload: bytes) -> bytes:
    head = RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + name.encode() + b":"
    return hashlib.sha384(head + payload).digest()


def agent_event(name: str, version: str, bundle_digest: bytes) -> RuntimeEvent:
    """The RTMR3 event that measures an agent bundle (its SHA-384 digest, name and version).

    The payload is canonical JSON, so the event is readable in any dstack log viewer and the
    digest commits to the bundle digest."""
    if len(bundle_digest) != RTMR_SIZE:
        raise ValueError("an agent bundle digest is a 48-byte SHA-384")
    body = {"digest": bundle_digest.hex(), "name": name, "version": version}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return RuntimeEvent.create(AGENT_EVENT, payload)


def replay(
    events: Iterable[RuntimeEvent], initial: Sequence[bytes] | None = None
) -> tuple[bytes, bytes, bytes, bytes]:
    """RTMR0-3 after extending every event (from 48 zero bytes, or `initial`)."""
    registers = list(initial) if initial is not None else [_ZERO] * 4
    if len(registers) != 4 or any(len(r) != RTMR_SIZE for r in registers):
        raise EventLogError("initial RTMR values must be four 48-byte registers")
    for index, event in enumerate(events):
        if not 0 <= event.imr <= 3:
            raise EventLogError(f"event {index} extends RTMR{event.imr}, which does not exist")
        if len(event.digest) != RTMR_SIZE:
            raise EventLogError(f"event {index} digest is not 48 bytes")
        if not event.digest_matches_content:
            raise EventLogError(
                f"event {index} ({event.event!r}): digest does not match its name and payload"
            )
        registers[event.imr] = extend(registers[event.imr], event.digest)
    return registers[0], registers[1], registers[2], registers[3]


def check_rtmrs(
    events: Iterable[RuntimeEvent],
    rtmrs: Sequence[bytes],
    *,
    initial: Sequence[bytes] | None = None,
) -> None:
    """Replay `events` and compare with the quoted RTMR0-3 (`TdReport10.rtmrs`).

    Raises `EventLogError` naming the first RTMR whose replayed value differs, with both values'
    hex prefixes, or any error `replay` raises."""
    if len(rtmrs) != 4 or any(len(r) != RTMR_SIZE for r in rtmrs):
        raise EventLogError("quoted RTMR values must be four 48-byte registers")
    for index, (replayed, quoted) in enumerate(zip(replay(events, initial), rtmrs, strict=True)):
        if replayed != quoted:
            raise EventLogError(
                f"RTMR{index}: the event log replays to {replayed.hex()[:16]}..., "
                f"the quote has {quoted.hex()[:16]}..."
            )


@dataclass(frozen=True, slots=True)
class AgentMeasurement:
    """What an `enclava.agent` event claims: the agent's name, version and 48-byte bundle digest."""

    name: str
    version: str
    bundle_digest: bytes


def agent_events(events: Iterable[RuntimeEvent]) -> tuple[AgentMeasurement, ...]:
    """The agent measurements in a runtime event log, in log order.

    Only RTMR3 runtime events named `enclava.agent` count; one whose digest does not match its
    payload, that sits in another RTMR, or whose payload is not `agent_event`'s JSON object
    (exactly `digest`, `name`, `version`; no duplicate keys) raises `EventLogError`. This does not
    replay the log: call `check_rtmrs` for that."""
    out = []
    for index, event in enumerate(events):
        if event.event_type != RUNTIME_EVENT_TYPE or event.event != AGENT_EVENT:
            continue
        if event.imr != 3:
            raise EventLogError(f"event {index}: agent events extend RTMR3, not RTMR{event.imr}")
        if not event.digest_matches_content:
            raise EventLogError(f"event {index}: agent event digest does not match its payload")
        out.append(_agent_measurement(index, event.payload))
    return tuple(out)


def _agent_measurement(index: int, payload: bytes) -> AgentMeasurement:
    try:
        body = safejson.loads(payload, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise EventLogError(f"event {index}: agent payload is not JSON: {exc}") from None
    if not isinstance(body, dict) or set(body) != {"digest", "name", "version"}:
        raise EventLogError(f"event {index}: agent payload needs exactly digest, name, version")
    name, version, digest = body["name"], body["version"], body["digest"]
    if not (isinstance(name, str) and name and isinstance(version, str)):
        raise EventLogError(f"event {index}: agent name must be non-empty text, version text")
    if not isinstance(digest, str) or not _is_lower_hex(digest, 2 * RTMR_SIZE):
        raise EventLogError(f"event {index}: agent digest must be 96 lowercase hex digits")
    return AgentMeasurement(name, version, bytes.fromhex(digest))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _is_lower_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def events_to_json(events: Iterable[RuntimeEvent]) -> list[dict[str, Any]]:
    return [
        {
            "imr": e.imr,
            "event_type": e.event_type,
            "digest": e.digest.hex(),
            "event": e.event,
            "event_payload": e.payload.hex(),
        }
        for e in events
    ]


def events_from_json(doc: Any) -> tuple[RuntimeEvent, ...]:
    """Parse dstack's JSON event-log layout; raises `EventLogError` on anything malformed."""
    if not isinstance(doc, list):
        raise EventLogError("an event log is a JSON list")
    out = []
    for index, item in enumerate(doc):
        try:
            out.append(
                RuntimeEvent(
                    imr=_int(item["imr"]),
                    event_type=_int(item["event_type"]),
                    digest=bytes.fromhex(item["digest"]),
                    event=str(item["event"]),
                    payload=bytes.fromhex(item.get("event_payload", "")),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EventLogError(f"event {index} is malformed: {exc}") from None
    return tuple(out)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    return value
