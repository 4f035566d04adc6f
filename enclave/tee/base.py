"""The `TeeBackend` protocol every TEE backend implements.

A backend produces quotes over caller-chosen REPORTDATA and keeps the runtime event log of what
it extended into RTMRs. Event digests use dstack's runtime-event encoding
(`attestation.eventlog.RuntimeEvent`), so dstack's verifier and ours read the same log.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from attestation.eventlog import RuntimeEvent

__all__ = ["REPORT_DATA_SIZE", "TeeBackend", "check_report_data"]

REPORT_DATA_SIZE = 64


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
