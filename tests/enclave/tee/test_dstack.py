"""`DstackTdx` against a real HTTP server on a Unix socket speaking the guest-agent API."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from pathlib import Path

import pytest

from attestation.eventlog import RuntimeEvent, agent_event, replay
from attestation.quote import parse_quote
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.tee.base import TeeBackend
from enclave.tee.dstack import DstackTdx
from tests.enclave.tee.fakes import (
    TDX_QUOTE,
    FakeDstackAgent,
    quoted_rtmr3,
    runtime_entry,
    sgx_quote,
    td_quote,
)

REPORT_DATA = hashlib.sha512(b"worker").digest()


def test_quote_binds_report_data(agent: FakeDstackAgent) -> None:
    quote = DstackTdx(agent.path).quote(REPORT_DATA)
    assert parse_quote(quote).report.report_data == REPORT_DATA
    assert agent.requests == [("GetQuote", {"report_data": REPORT_DATA.hex()})]


def test_is_a_tee_backend_of_kind_tdx(agent: FakeDstackAgent) -> None:
    tee = DstackTdx(agent.path)
    assert isinstance(tee, TeeBackend)
    assert tee.kind == "tdx"


def test_event_log_comes_with_the_quote_and_replays_to_its_rtmr3(agent: FakeDstackAgent) -> None:
    quote, events = DstackTdx(agent.path).quote_with_event_log(REPORT_DATA)
    assert [(e.imr, e.event) for e in events] == [(0, ""), (3, "app-id"), (3, "compose-hash")]
    assert replay(events)[3] == quoted_rtmr3(quote)


def test_extend_emits_the_event_and_the_agent_logs_the_same_digest(
    agent: FakeDstackAgent,
) -> None:
    tee = DstackTdx(agent.path)
    event = agent_event("embedder", "1.0", hashlib.sha384(b"bundle").digest())
    tee.extend_rtmr(event)
    assert agent.requests[-1] == (
        "EmitEvent",
        {"event": event.event, "payload": event.payload.hex()},
    )
    log = tee.event_log()
    assert log[-1] == event
    quote, events = tee.quote_with_event_log(REPORT_DATA)
    assert replay(events)[3] == quoted_rtmr3(quote)


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (RuntimeEvent.create("x", b"payload", imr=2), TeeUnavailableError),
        (RuntimeEvent(3, 0x08000001, bytes(48), "x", b"payload"), ValueError),
        (RuntimeEvent(3, 0x80000001, bytes(48), "x", b""), ValueError),
    ],
    ids=["rtmr2", "wrong-digest", "boot-event-type"],
)
def test_rejects_events_the_agent_cannot_extend(
    agent: FakeDstackAgent, event: RuntimeEvent, error: type[Exception]
) -> None:
    with pytest.raises(error):
        DstackTdx(agent.path).extend_rtmr(event)
    assert agent.requests == []


def test_sealing_key_is_the_agents_key_for_the_label(agent: FakeDstackAgent) -> None:
    key = DstackTdx(agent.path).sealing_key("identity")
    assert key == hmac.new(agent.key_secret, b"identity", hashlib.sha256).digest()
    method, body = agent.requests[0]
    assert (method, body["path"]) == ("GetKey", "identity")


@pytest.mark.parametrize("key", [bytes(16), bytes(33), b""])
def test_sealing_key_of_wrong_size_is_a_protocol_error(agent: FakeDstackAgent, key: bytes) -> None:
    agent.answers["GetKey"] = (200, json.dumps({"key": key.hex(), "signature_chain": []}).encode())
    with pytest.raises(TeeProtocolError, match=f"{len(key)}-byte key"):
        DstackTdx(agent.path).sealing_key("identity")


def test_sealing_key_not_hex_is_a_protocol_error(agent: FakeDstackAgent) -> None:
    agent.answers["GetKey"] = (200, b'{"key": "zz", "signature_chain": []}')
    with pytest.raises(TeeProtocolError, match="not hex"):
        DstackTdx(agent.path).sealing_key("identity")


@pytest.mark.parametrize("report_data", [b"", bytes(32), bytes(65), "x" * 64])
def test_rejects_report_data_that_is_not_64_bytes(
    agent: FakeDstackAgent, report_data: bytes
) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        DstackTdx(agent.path).quote(report_data)
    assert agent.requests == []


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ((500, b'{"error": "quote generation failed"}'), "HTTP 500.*quote generation failed"),
        ((200, b"not json"), "out of protocol"),
        ((200, b"[]"), "out of protocol"),
        ((200, b'{"quote": 5, "event_log": "[]"}'), "out of protocol"),
        ((200, b'{"event_log": "[]"}'), "out of protocol"),
    ],
    ids=["http-500", "not-json", "not-an-object", "quote-not-a-string", "no-quote"],
)
def test_malformed_answers_are_protocol_errors(
    agent: FakeDstackAgent, answer: tuple[int, bytes], match: str
) -> None:
    agent.answers["GetQuote"] = answer
    with pytest.raises(TeeProtocolError, match=match):
        DstackTdx(agent.path).quote(REPORT_DATA)


@pytest.mark.parametrize(
    ("quote", "match"),
    [
        ("zz", "not hex"),
        ("", "0 bytes"),
        (TDX_QUOTE[:47].hex(), "47 bytes"),
        (TDX_QUOTE[:700].hex(), "malformed quote"),
        (td_quote(bytes(64)).hex(), "other REPORTDATA"),
        (sgx_quote(REPORT_DATA).hex(), "sgx quote, expected tdx"),
    ],
    ids=["not-hex", "empty", "short-header", "truncated", "other-report-data", "sgx"],
)
def test_bad_quotes_are_protocol_errors(agent: FakeDstackAgent, quote: str, match: str) -> None:
    agent.tamper = {"quote": quote}
    with pytest.raises(TeeProtocolError, match=match):
        DstackTdx(agent.path).quote(REPORT_DATA)


@pytest.mark.parametrize(
    ("event_log", "match"),
    [
        ("not json", "event log is malformed"),
        (json.dumps({"imr": 3}), "event log is malformed"),
        (json.dumps([{"imr": 3, "event_type": 1}]), "event log is malformed"),
        (json.dumps([runtime_entry("app-id", b"x") | {"event_payload": "00"}]), "wrong digest"),
        (json.dumps([runtime_entry("app-id", b"x") | {"digest": "00" * 32}]), "wrong digest"),
    ],
    ids=["not-json", "not-a-list", "missing-fields", "digest-mismatch", "short-digest"],
)
def test_bad_event_logs_are_protocol_errors(
    agent: FakeDstackAgent, event_log: str, match: str
) -> None:
    agent.tamper = {"event_log": event_log}
    with pytest.raises(TeeProtocolError, match=match):
        DstackTdx(agent.path).event_log()


def test_absent_socket_is_unavailable(socket_dir: Path) -> None:
    with pytest.raises(TeeUnavailableError, match="no dstack guest agent"):
        DstackTdx(socket_dir / "absent.sock")


def test_socket_nobody_listens_on_is_unavailable(socket_dir: Path) -> None:
    path = socket_dir / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
    tee = DstackTdx(path)
    with pytest.raises(TeeUnavailableError, match="unreachable"):
        tee.quote(REPORT_DATA)
    with pytest.raises(TeeUnavailableError, match="unreachable"):
        tee.sealing_key("identity")
