"""Intel SGX under Gramine: quotes and sealing keys through Gramine's `/dev/attestation`.

Gramine needs `sgx.remote_attestation = "dcap"` in the manifest; `attestation_type` then reads
`dcap`. A quote is: write the 64-byte REPORTDATA to `user_report_data`, read `quote`. The two
files are one state per enclave, so this backend serialises its own quotes and parses every
answer: a quote over other REPORTDATA (another writer in the same enclave) is refused.

SGX has no RTMRs: the measurement is MRENCLAVE, fixed at build time, so `extend_rtmr` raises
`TeeUnavailableError` and the event log is empty. Sealing keys come from Gramine's
`keys/_sgx_mrenclave` (the 16-byte EGETKEY seal key bound to MRENCLAVE on this CPU), expanded with
HKDF-SHA256 (`label` as info) so the raw key is never used twice.
"""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from attestation.eventlog import RuntimeEvent
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.tee.base import check_quote, check_report_data
from enclave.tee.device_files import DeviceFiles

__all__ = ["DEFAULT_ATTESTATION_ROOT", "GramineSgx"]

DEFAULT_ATTESTATION_ROOT = Path("/dev/attestation")
MRENCLAVE_KEY = "keys/_sgx_mrenclave"
MRENCLAVE_KEY_SIZE = 16
SEALING_KEY_SIZE = 32


class GramineSgx:
    """An SGX enclave under Gramine with DCAP attestation (see the module docstring).

    `root`: Gramine's attestation directory. Raises `TeeUnavailableError` when it is absent (not
    in Gramine) or its attestation type is not `dcap`. Thread-safe."""

    kind = "sgx"

    def __init__(
        self, root: Path = DEFAULT_ATTESTATION_ROOT, *, files: DeviceFiles | None = None
    ) -> None:
        self._root = Path(root)
        self._files = files if files is not None else DeviceFiles()
        self._lock = threading.Lock()
        try:
            raw = self._files.read(self._root / "attestation_type")
        except OSError as exc:
            raise TeeUnavailableError(
                f"{self._root / 'attestation_type'} is unreadable ({exc.strerror}): not running "
                "in a Gramine SGX enclave"
            ) from exc
        attestation_type = raw.decode(errors="replace").strip("\0\n ")
        if attestation_type != "dcap":
            raise TeeUnavailableError(
                f"Gramine attestation type is {attestation_type!r}, not 'dcap' "
                '(set sgx.remote_attestation = "dcap" in the manifest)'
            )

    def quote(self, report_data: bytes) -> bytes:
        """An SGX DCAP quote over `report_data` (64 bytes; `ValueError` otherwise). Raises
        `TeeProtocolError` on an I/O error or a malformed or foreign quote."""
        check_report_data(report_data)
        with self._lock:
            try:
                self._files.write(self._root / "user_report_data", report_data)
            except OSError as exc:
                raise TeeProtocolError(f"cannot write user_report_data: {exc}") from exc
            raw = self._read(self._root / "quote")
        return check_quote(raw, report_data, tee="sgx", source=str(self._root / "quote"))

    def extend_rtmr(self, event: RuntimeEvent) -> None:
        raise TeeUnavailableError("SGX has no RTMRs: the enclave's measurement is MRENCLAVE")

    def event_log(self) -> tuple[RuntimeEvent, ...]:
        return ()

    def sealing_key(self, label: str) -> bytes:
        """32 bytes: HKDF-SHA256 of the MRENCLAVE seal key, `label` (UTF-8, non-empty) as info.
        Another enclave build, or another CPU, derives another key."""
        if not label:
            raise ValueError("a sealing key needs a non-empty label")
        path = self._root / MRENCLAVE_KEY
        try:
            seal_key = self._files.read(path)
        except FileNotFoundError as exc:
            raise TeeUnavailableError(f"{path} does not exist: Gramine too old?") from exc
        except OSError as exc:
            raise TeeProtocolError(f"cannot read {path}: {exc}") from exc
        if len(seal_key) != MRENCLAVE_KEY_SIZE:
            raise TeeProtocolError(f"{path} holds {len(seal_key)} bytes, not {MRENCLAVE_KEY_SIZE}")
        hkdf = HKDF(
            algorithm=hashes.SHA256(), length=SEALING_KEY_SIZE, salt=None, info=label.encode()
        )
        return hkdf.derive(seal_key)

    def _read(self, path: Path) -> bytes:
        try:
            return self._files.read(path)
        except OSError as exc:
            raise TeeProtocolError(f"cannot read {path}: {exc}") from exc
