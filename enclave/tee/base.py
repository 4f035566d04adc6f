"""The `TeeBackend` protocol every TEE backend implements.

A backend produces quotes over caller-chosen REPORTDATA and keeps the runtime event log of what
it extended into RTMRs. Event digests use dstack's runtime-event encoding
(`attestation.eventlog.RuntimeEvent`), so dstack's verifier and ours read the same log.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from attestation.errors import QuoteFormatError
from attestation.eventlog import RUNTIME_EVENT_TYPE, RuntimeEvent
from attestation.quote import HEADER_SIZE, parse_quote
from enclave.errors import TeeProtocolError

__all__ = [
    "REPORT_DATA_SIZE",
    "RTMR_SIZE",
    "RUNTIME_IMR",
    "TeeBackend",
    "check_quote",
    "check_report_data",
    "check_runtime_event",
]

REPORT_DATA_SIZE = 64
RTMR_SIZE = 48
RUNTIME_IMR = 3


@runtime_checkable
class TeeBackend(Protocol):
    """A TEE as the worker sees it. `kind` is "tdx", "sgx" or "simulated"."""

    @property
    def kind(self) -> str: ...

    def quote(self, report_data: bytes) -> bytes:
        """A DCAP quote whose REPORTDATA is exactly `report_data` (64 bytes)."""
        ...

    def extend_rtmr(self, event: RuntimeEvent) -> None:
        """Extend RTMR `event.imr` with `event.digest` and append `event` to the event log."""
        ...

    def event_log(self) -> tuple[RuntimeEvent, ...]:
        """Every runtime event extended so far, in order."""
        ...

    def sealing_key(self, label: str) -> bytes:
        """A 32-byte key only this TEE, running this measurement, can derive (`label` separates
        uses). Raises `TeeUnavailableError` where the TEE offers no sealing (bare TDX: use a
        KMS)."""
        ...


def check_report_data(report_data: bytes) -> bytes:
    """REPORTDATA must be exactly 64 bytes; raises `ValueError` otherwise (a caller bug)."""
    if not isinstance(report_data, bytes) or len(report_data) != REPORT_DATA_SIZE:
        raise ValueError(f"report_data must be exactly {REPORT_DATA_SIZE} bytes")
    return report_data


def check_quote(raw: bytes, report_data: bytes, *, tee: str, source: str) -> bytes:
    """`raw` if it parses as a DCAP quote of `tee` ("tdx" or "sgx") whose REPORTDATA is
    `report_data`; `TeeProtocolError` naming `source` otherwise. Catches truncated answers and a
    concurrent writer that swapped the REPORTDATA. Signatures are not checked here: that is the
    verifier's job."""
    if len(raw) < HEADER_SIZE:
        raise TeeProtocolError(f"{source} returned {len(raw)} bytes, less than a quote header")
    try:
        quote = parse_quote(raw)
    except QuoteFormatError as exc:
        raise TeeProtocolError(f"{source} returned a malformed quote: {exc.message}") from None
    if quote.tee != tee:
        raise TeeProtocolError(f"{source} returned a {quote.tee} quote, expected {tee}")
    if quote.report.report_data != report_data:
        raise TeeProtocolError(
            f"{source} returned a quote over other REPORTDATA (a racing writer?)"
        )
    return raw


def check_runtime_event(event: RuntimeEvent) -> RuntimeEvent:
    """A worker only extends RTMR3, only with dstack runtime events whose digest is the one their
    name and payload give; `ValueError` otherwise (a caller bug)."""
    if event.imr != RUNTIME_IMR:
        raise ValueError(f"runtime events extend RTMR{RUNTIME_IMR}, not RTMR{event.imr}")
    if event.event_type != RUNTIME_EVENT_TYPE or not event.event:
        raise ValueError("only named runtime events (type 0x08000001) may be extended")
    if len(event.digest) != RTMR_SIZE or not event.digest_matches_content:
        raise ValueError(f"event {event.event!r}: digest does not match its name and payload")
    return event
