"""Runtime event logs (dstack's encoding): digests, JSON layout, replay against quoted RTMRs, and
the agent-measurement events."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation.errors import EventLogError
from attestation.eventlog import (
    AGENT_EVENT,
    AgentMeasurement,
    RuntimeEvent,
    agent_event,
    agent_events,
    check_rtmrs,
    events_from_json,
    events_to_json,
    replay,
)

BUNDLE = hashlib.sha384(b"bundle").digest()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sample_log() -> list[RuntimeEvent]:
    return [
        RuntimeEvent.create("system-preparing", b""),
        RuntimeEvent.create("app-id", bytes.fromhex("0a1b2c3d")),
        agent_event("embedder", "1.0.0", BUNDLE),
        RuntimeEvent.create("key-provider", b'{"name":"kms"}'),
        RuntimeEvent.create("boot-config", b"cfg", imr=2),
    ]


def quoted(events: list[RuntimeEvent]) -> tuple[bytes, bytes, bytes, bytes]:
    """The RTMRs an honest TEE would quote after extending `events`."""
    return replay(events)


def test_digest_follows_dstacks_rule() -> None:
    # SHA-384(event type 0x08000001 as u32 little-endian || ":" || name || ":" || payload)
    expected = hashlib.sha384(b"\x01\x00\x00\x08" + b":" + b"app-id" + b":" + b"\x0a\x1b").digest()
    event = RuntimeEvent.create("app-id", b"\x0a\x1b")
    assert event.digest == expected
    assert event.event_type == 0x08000001
    assert event.imr == 3


def test_replay_extends_from_zero() -> None:
    events = sample_log()
    rtmr3 = bytes(48)
    for event in events[:4]:
        rtmr3 = hashlib.sha384(rtmr3 + event.digest).digest()
    rtmr2 = hashlib.sha384(bytes(48) + events[4].digest).digest()
    assert replay(events) == (bytes(48), bytes(48), rtmr2, rtmr3)


def test_json_round_trip() -> None:
    events = sample_log()
    doc = json.loads(json.dumps(events_to_json(events)))
    assert doc[1] == {
        "imr": 3,
        "event_type": 0x08000001,
        "digest": events[1].digest.hex(),
        "event": "app-id",
        "event_payload": "0a1b2c3d",
    }
    assert events_from_json(doc) == tuple(events)


# --- check_rtmrs ----------------------------------------------------------------------------


def test_check_rtmrs_accepts_the_honest_log() -> None:
    events = sample_log()
    check_rtmrs(events, quoted(events))


def test_check_rtmrs_shows_both_values() -> None:
    events = sample_log()
    rtmrs = list(quoted(events))
    rtmrs[3] = bytes.fromhex("ab" * 48)
    replayed = replay(events)[3].hex()[:16]
    with pytest.raises(EventLogError, match=rf"^RTMR3: .*{replayed}.*abababababababab") as err:
        check_rtmrs(events, rtmrs)
    assert err.value.code == "event_log_mismatch"


def test_check_rtmrs_detects_edited_payload() -> None:
    events = sample_log()
    rtmrs = quoted(events)
    edited = events[1]
    events[1] = RuntimeEvent(edited.imr, edited.event_type, edited.digest, edited.event, b"evil")
    with pytest.raises(EventLogError, match=r"event 1 .*digest does not match"):
        check_rtmrs(events, rtmrs)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def test_check_rtmrs_detects_edited_digest() -> None:
    events = sample_log()
    rtmrs = quoted(events)
    e = events[1]
    events[1] = RuntimeEvent(e.imr, e.event_type, flip_last_byte(e.digest), e.event, e.payload)
    with pytest.raises(EventLogError, match=r"event 1 .*digest does not match"):
        check_rtmrs(events, rtmrs)


def test_check_rtmrs_detects_edited_digest_of_boot_event() -> None:
    # Boot (CCEL) events carry no name: only the quoted RTMR can tell their digest was edited.
    events = [*sample_log(), RuntimeEvent(1, 0x0D, hashlib.sha384(b"k").digest(), "", b"k")]
    rtmrs = quoted(events)
    e = events[-1]
    events[-1] = RuntimeEvent(e.imr, e.event_type, flip_last_byte(e.digest), e.event, e.payload)
    with pytest.raises(EventLogError, match=r"^RTMR1: "):
        check_rtmrs(events, rtmrs)


def test_check_rtmrs_detects_substituted_event() -> None:
    events = sample_log()
    rtmrs = quoted(events)
    events[1] = RuntimeEvent.create("app-id", bytes.fromhex("0a1b2c3e"))
    with pytest.raises(EventLogError, match=r"^RTMR3: "):
        check_rtmrs(events, rtmrs)


def test_check_rtmrs_detects_removed_event() -> None:
    events = sample_log()
    rtmrs = quoted(events)
    with pytest.raises(EventLogError, match=r"^RTMR3: "):
        check_rtmrs(events[:2] + events[3:], rtmrs)


def test_check_rtmrs_detects_reordered_pair() -> None:
    events = sample_log()
    rtmrs = quoted(events)
    events[1], events[2] = events[2], events[1]
    with pytest.raises(EventLogError, match=r"^RTMR3: "):
        check_rtmrs(events, rtmrs)


def test_check_rtmrs_detects_added_event() -> None:
    events = sample_log()
    rtmrs = quoted(events)
    with pytest.raises(EventLogError, match=r"^RTMR3: "):
        check_rtmrs([*events, agent_event("other", "1", BUNDLE)], rtmrs)


def test_check_rtmrs_names_the_first_differing_rtmr() -> None:
    events = sample_log()
    with pytest.raises(EventLogError, match=r"^RTMR2: "):
        check_rtmrs(events, (bytes(48),) * 4)


@pytest.mark.parametrize("rtmrs", [(), (bytes(48),) * 3, (bytes(48),) * 5, (bytes(47),) * 4])
def test_check_rtmrs_rejects_malformed_quoted_values(rtmrs: tuple[bytes, ...]) -> None:
    with pytest.raises(EventLogError, match=r"four 48-byte"):
        check_rtmrs(sample_log(), rtmrs)


# --- agent events ---------------------------------------------------------------------------


def test_agent_events_decodes_agent_event() -> None:
    log = [*sample_log(), agent_event("classifier", "0.2", hashlib.sha384(b"c").digest())]
    assert agent_events(log) == (
        AgentMeasurement("embedder", "1.0.0", BUNDLE),
        AgentMeasurement("classifier", "0.2", hashlib.sha384(b"c").digest()),
    )
    assert agent_events(sample_log()[:2]) == ()


def test_agent_events_survive_the_json_layout() -> None:
    log = events_from_json(json.loads(json.dumps(events_to_json(sample_log()))))
    assert agent_events(log) == (AgentMeasurement("embedder", "1.0.0", BUNDLE),)


GOOD = {"digest": BUNDLE.hex(), "name": "a", "version": "1"}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        b"[" * 100_000,
        json.dumps({k: v for k, v in GOOD.items() if k != "version"}).encode(),
        json.dumps({**GOOD, "extra": 1}).encode(),
        json.dumps({**GOOD, "name": 7}).encode(),
        json.dumps({**GOOD, "name": ""}).encode(),
        json.dumps({**GOOD, "version": None}).encode(),
        json.dumps({**GOOD, "digest": BUNDLE.hex()[:-2]}).encode(),
        json.dumps({**GOOD, "digest": BUNDLE.hex().upper()}).encode(),
        json.dumps({**GOOD, "digest": " " + BUNDLE.hex()[1:]}).encode(),
        json.dumps({**GOOD, "digest": list(BUNDLE)}).encode(),
        b'{"digest":"' + BUNDLE.hex().encode() + b'","name":"a","name":"b","version":"1"}',
    ],
)
def test_agent_events_rejects_malformed_payload(payload: bytes) -> None:
    with pytest.raises(EventLogError, match=r"^event 0: agent"):
        agent_events([RuntimeEvent.create(AGENT_EVENT, payload)])


def test_agent_events_rejects_payload_edited_after_measurement() -> None:
    event = agent_event("embedder", "1.0.0", BUNDLE)
    forged = json.dumps({**GOOD, "name": "embedder", "version": "9.9.9"}).encode()
    edited = RuntimeEvent(event.imr, event.event_type, event.digest, event.event, forged)
    with pytest.raises(EventLogError, match=r"does not match its payload"):
        agent_events([edited])


def test_agent_events_rejects_agent_event_outside_rtmr3() -> None:
    event = RuntimeEvent.create(AGENT_EVENT, agent_event("a", "1", BUNDLE).payload, imr=2)
    with pytest.raises(EventLogError, match=r"RTMR3, not RTMR2"):
        agent_events([event])


@FUZZ
@given(st.binary(max_size=200))
def test_agent_events_raise_only_event_log_error(payload: bytes) -> None:
    with contextlib.suppress(EventLogError):
        agent_events([RuntimeEvent.create(AGENT_EVENT, payload)])


# --- malformed JSON logs --------------------------------------------------------------------


def good_item(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = events_to_json(sample_log()[:1])[0]
    item.update(changes)
    return item


@pytest.mark.parametrize(
    "doc",
    [
        {},
        "[]",
        None,
        ["not an object"],
        [[1, 2, 3]],
        [{k: v for k, v in good_item().items() if k != "digest"}],
        [good_item(imr="3")],
        [good_item(imr=True)],
        [good_item(event_type=1.5)],
        [good_item(digest="zz")],
        [good_item(digest=None)],
        [good_item(event_payload="abc")],
        [good_item(event_payload=5)],
    ],
)
def test_malformed_json_log_raises_event_log_error(doc: Any) -> None:
    with pytest.raises(EventLogError):
        events_from_json(doc)


@pytest.mark.parametrize("item", [good_item(imr=4), good_item(imr=-1), good_item(digest="00")])
def test_json_events_that_cannot_be_extended_fail_replay(item: dict[str, Any]) -> None:
    with pytest.raises(EventLogError):
        replay(events_from_json([item]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
json_items = st.fixed_dictionaries(
    {},
    optional={
        "imr": json_values | st.integers(-1, 5),
        "event_type": json_values,
        "digest": json_values | st.sampled_from(["", "00" * 48, "0g"]),
        "event": json_values,
        "event_payload": json_values | st.just("00"),
    },
)


@FUZZ
@given(st.lists(json_items | json_values, max_size=4) | json_values)
def test_json_logs_raise_only_event_log_error(doc: Any) -> None:
    with contextlib.suppress(EventLogError):
        check_rtmrs(events_from_json(doc), (bytes(48),) * 4)
