"""Intel TDX on Linux: quotes through configfs-tsm, RTMR3 through the TSM measurement registers.

Quotes (Linux >= 6.7, `CONFIG_TSM_REPORTS`): one fresh entry under `/sys/kernel/config/tsm/report`
per quote; write the 64-byte REPORTDATA to `inblob`, read the quote from `outblob`, and check that
`generation` moved by exactly one write (another writer on the same entry would move it more),
then remove the entry. Every answer is parsed: a quote that is not a TDX quote over the requested
REPORTDATA is refused.

RTMR extension (Linux >= 6.16, `CONFIG_TSM_MEASUREMENTS`): writing a 48-byte digest to
`/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384` extends RTMR3
(TDG.MR.RTMR.EXTEND); reading it returns the register. The kernel keeps no event log of these
writes: this backend keeps one in memory, and the worker must persist it (and pass it back as
`events=` after a restart without reboot), or RTMR3 can no longer be replayed.

Bare TDX has no sealing key; a worker that needs one uses a KMS (dstack's, on Phala Cloud).
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from attestation.eventlog import RuntimeEvent, extend
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.tee.base import RTMR_SIZE, check_quote, check_report_data, check_runtime_event
from enclave.tee.device_files import DeviceFiles

__all__ = ["DEFAULT_MEASUREMENTS", "DEFAULT_TSM_REPORT_ROOT", "TDX_PROVIDER", "LinuxTdx"]

DEFAULT_TSM_REPORT_ROOT = Path("/sys/kernel/config/tsm/report")
DEFAULT_MEASUREMENTS = Path("/sys/devices/virtual/misc/tdx_guest/measurements")
TDX_PROVIDER = "tdx_guest"

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class LinuxTdx:
    """A TDX guest's own kernel interfaces (see the module docstring). Thread-safe.

    `report_root`: the configfs-tsm report directory; `measurements`: the tdx_guest sysfs
    measurement directory; `events`: what was already extended into RTMR3 since boot (the
    persisted log), kept in order. Raises `TeeUnavailableError` when configfs-tsm is absent or its
    provider is not `tdx_guest`."""

    kind = "tdx"

    def __init__(
        self,
        report_root: Path = DEFAULT_TSM_REPORT_ROOT,
        measurements: Path = DEFAULT_MEASUREMENTS,
        *,
        events: Iterable[RuntimeEvent] = (),
        files: DeviceFiles | None = None,
    ) -> None:
        self._root = Path(report_root)
        self._measurements = Path(measurements)
        self._files = files if files is not None else DeviceFiles()
        self._events = [check_runtime_event(e) for e in events]
        self._lock = threading.Lock()
        if not self._root.is_dir():
            raise TeeUnavailableError(
                f"{self._root} does not exist: configfs-tsm is not mounted or the kernel lacks "
                "CONFIG_TSM_REPORTS (Linux >= 6.7)"
            )
        self._with_entry(lambda entry: None)

    def quote(self, report_data: bytes) -> bytes:
        """A TDX quote over `report_data` (64 bytes; `ValueError` otherwise). Raises
        `TeeProtocolError` on a raced entry, an I/O error or a malformed quote."""
        check_report_data(report_data)
        return self._with_entry(lambda entry: self._generate(entry, report_data))

    def extend_rtmr(self, event: RuntimeEvent) -> None:
        """Extend RTMR3 with `event.digest` and log it; checks the register read back is the
        extension of its previous value (`TeeProtocolError` otherwise: another writer extended it
        meanwhile, and the log no longer replays)."""
        check_runtime_event(event)
        path = self._measurements / f"rtmr{event.imr}:sha384"
        with self._lock:
            before = self._read_register(path)
            try:
                self._files.write(path, event.digest)
            except OSError as exc:
                raise TeeProtocolError(f"cannot extend {path}: {exc}") from exc
            self._events.append(event)
            after = self._read_register(path)
        if after != extend(before, event.digest):
            raise TeeProtocolError(f"{path} is not the extension of its previous value")

    def event_log(self) -> tuple[RuntimeEvent, ...]:
        with self._lock:
            return tuple(self._events)

    def sealing_key(self, label: str) -> bytes:
        raise TeeUnavailableError("bare TDX has no sealing key: derive keys from a KMS instead")

    def _with_entry(self, use: Callable[[Path], _T]) -> _T:
        entry = self._root / f"enclava-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            self._files.mkdir(entry)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                raise TeeUnavailableError(f"{self._root}: no TSM provider is registered") from exc
            raise TeeProtocolError(f"cannot create {entry}: {exc}") from exc
        try:
            provider = self._read(entry / "provider").decode(errors="replace").strip()
            if provider != TDX_PROVIDER:
                raise TeeUnavailableError(f"configfs-tsm provider is {provider!r}, not TDX")
            return use(entry)
        finally:
            try:
                self._files.rmdir(entry)
            except OSError as exc:
                _log.warning("cannot remove configfs-tsm entry %s: %s", entry, exc)

    def _generate(self, entry: Path, report_data: bytes) -> bytes:
        before = self._generation(entry)
        try:
            self._files.write(entry / "inblob", report_data)
        except OSError as exc:
            raise TeeProtocolError(f"cannot write {entry / 'inblob'}: {exc}") from exc
        raw = self._read(entry / "outblob")
        after = self._generation(entry)
        if after != before + 1:
            raise TeeProtocolError(
                f"{entry}: generation went from {before} to {after}, expected one write "
                "(another writer raced this report)"
            )
        return check_quote(raw, report_data, tee="tdx", source=str(entry / "outblob"))

    def _generation(self, entry: Path) -> int:
        text = self._read(entry / "generation").decode(errors="replace").strip()
        if not text.isdigit():
            raise TeeProtocolError(f"{entry / 'generation'} is {text!r}, not a count")
        return int(text)

    def _read(self, path: Path) -> bytes:
        try:
            return self._files.read(path)
        except OSError as exc:
            raise TeeProtocolError(f"cannot read {path}: {exc}") from exc

    def _read_register(self, path: Path) -> bytes:
        try:
            value = self._files.read(path)
        except FileNotFoundError as exc:
            raise TeeUnavailableError(
                f"{path} does not exist: RTMR extension needs Linux >= 6.16 "
                "(CONFIG_TSM_MEASUREMENTS)"
            ) from exc
        except OSError as exc:
            raise TeeProtocolError(f"cannot read {path}: {exc}") from exc
        if len(value) != RTMR_SIZE:
            raise TeeProtocolError(f"{path} holds {len(value)} bytes, not {RTMR_SIZE}")
        return value
