"""A dstack CVM (Phala Cloud): quotes, RTMR3 events and keys from the dstack guest agent.

Speaks to the guest agent through Phala's `dstack-sdk` client (`DstackClient`: JSON over HTTP on
the agent's Unix socket, `/var/run/dstack.sock` by default). The agent owns the TDX interfaces:
it extends RTMR3 itself (`EmitEvent`, with the same runtime-event digest rule as
`attestation.eventlog`) and keeps the event log, boot-time RTMR0-2 events included, which it
returns with every quote. Keys come from dstack's KMS (`GetKey`), bound to the app identity.

Failures map to `enclave.errors`: an absent or silent socket is `TeeUnavailableError`; an HTTP
error, a malformed answer or a quote that does not bind the requested REPORTDATA is
`TeeProtocolError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from dstack_sdk import DstackClient, GetKeyResponse, GetQuoteResponse

from attestation import safejson
from attestation.errors import EventLogError
from attestation.eventlog import RuntimeEvent, events_from_json
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.tee.base import (
    REPORT_DATA_SIZE,
    RTMR_SIZE,
    RUNTIME_IMR,
    check_quote,
    check_report_data,
    check_runtime_event,
)

__all__ = ["DEFAULT_DSTACK_SOCKETS", "DstackTdx", "parse_event_log"]

DEFAULT_DSTACK_SOCKETS = (
    Path("/var/run/dstack.sock"),
    Path("/run/dstack.sock"),
    Path("/var/run/dstack/dstack.sock"),
    Path("/run/dstack/dstack.sock"),
)
"""Where the dstack guest agent listens, in the order `dstack-sdk` looks."""
SEALING_KEY_SIZE = 32

_T = TypeVar("_T")


def parse_event_log(text: str) -> tuple[RuntimeEvent, ...]:
    """The agent's event log (a JSON string holding dstack's event list) as `RuntimeEvent`s.
    Every digest must be 48 bytes and every runtime event's digest the one its name and payload
    give; `TeeProtocolError` otherwise."""
    try:
        events = events_from_json(safejson.loads(text))
    except (ValueError, EventLogError) as exc:
        raise TeeProtocolError(f"the dstack event log is malformed: {exc}") from None
    for index, event in enumerate(events):
        if len(event.digest) != RTMR_SIZE or not event.digest_matches_content:
            raise TeeProtocolError(f"dstack event {index} ({event.event!r}) has a wrong digest")
    return events


class DstackTdx:
    """The dstack guest agent at `endpoint` (a Unix socket path or an http(s) URL; None: the
    SDK's default, which honours `DSTACK_SIMULATOR_ENDPOINT`). `timeout` is in seconds per
    request. Raises `TeeUnavailableError` when the socket does not exist. Thread-safe."""

    kind = "tdx"

    def __init__(self, endpoint: str | Path | None = None, *, timeout: float = 10.0) -> None:
        self._endpoint = str(endpoint) if endpoint is not None else None
        try:
            self._client = DstackClient(self._endpoint, timeout=timeout)
        except FileNotFoundError as exc:
            raise TeeUnavailableError(f"no dstack guest agent: {exc}") from exc
        self._lock = threading.Lock()

    def quote(self, report_data: bytes) -> bytes:
        """A TDX quote over `report_data` (64 bytes; `ValueError` otherwise)."""
        return self.quote_with_event_log(report_data)[0]

    def quote_with_event_log(self, report_data: bytes) -> tuple[bytes, tuple[RuntimeEvent, ...]]:
        """A quote and the event log the agent returned with it: the pair a verifier replays,
        taken in one request so no event slips in between."""
        check_report_data(report_data)
        answer: GetQuoteResponse = self._call("GetQuote", lambda c: c.get_quote(report_data))
        try:
            raw = bytes.fromhex(answer.quote)
        except ValueError:
            raise TeeProtocolError("the dstack quote is not hex") from None
        quote = check_quote(raw, report_data, tee="tdx", source="dstack GetQuote")
        return quote, parse_event_log(answer.event_log)

    def extend_rtmr(self, event: RuntimeEvent) -> None:
        """Ask the agent to extend RTMR3 with `event` (it derives the same digest from name and
        payload, and logs the event). Only RTMR3 runtime events: `TeeUnavailableError` for
        another register, `ValueError` for an event whose digest does not match."""
        if event.imr != RUNTIME_IMR:
            raise TeeUnavailableError(
                f"the dstack guest agent extends RTMR3 only, not RTMR{event.imr}"
            )
        check_runtime_event(event)
        self._call("EmitEvent", lambda c: c.emit_event(event.event, event.payload))

    def event_log(self) -> tuple[RuntimeEvent, ...]:
        """The agent's whole event log, RTMR0-2 boot events included. The agent only returns it
        with a quote, so this costs one quote generation (over zero REPORTDATA)."""
        return self.quote_with_event_log(bytes(REPORT_DATA_SIZE))[1]

    def sealing_key(self, label: str) -> bytes:
        """32 bytes from dstack's KMS for key path `label` (non-empty): bound to this app's
        identity, the same across restarts and instances of the app."""
        if not label:
            raise ValueError("a sealing key needs a non-empty label")
        answer: GetKeyResponse = self._call("GetKey", lambda c: c.get_key(path=label))
        try:
            key = bytes.fromhex(answer.key)
        except ValueError:
            raise TeeProtocolError("the dstack key is not hex") from None
        if len(key) != SEALING_KEY_SIZE:
            raise TeeProtocolError(f"dstack returned a {len(key)}-byte key, not {SEALING_KEY_SIZE}")
        return key

    def _call(self, method: str, call: Callable[[DstackClient], _T]) -> _T:
        """One request; the client is opened and closed around it (its connection pool is not
        shared between threads)."""
        where = self._endpoint or "the default dstack socket"
        with self._lock:
            try:
                with self._client:
                    return call(self._client)
            except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError) as exc:
                raise TeeUnavailableError(
                    f"dstack guest agent at {where} unreachable: {exc}"
                ) from exc
            except httpx.HTTPStatusError as exc:
                body = exc.response.text[:200]
                raise TeeProtocolError(
                    f"dstack {method} failed with HTTP {exc.response.status_code}: {body}"
                ) from exc
            except httpx.HTTPError as exc:
                raise TeeProtocolError(f"dstack {method} failed: {exc}") from exc
            except (ValueError, TypeError, KeyError) as exc:
                raise TeeProtocolError(f"dstack {method} answered out of protocol: {exc}") from exc
