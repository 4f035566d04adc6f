"""Pick the TEE backend this machine offers.

Auto-detection tries, in order: a dstack guest-agent socket (a dstack CVM, e.g. Phala Cloud),
configfs-tsm with the `tdx_guest` provider (a bare TDX guest), Gramine's `/dev/attestation` with
DCAP (SGX), and only then the simulator, with a warning naming why each real TEE was skipped.
A backend asked for by name (`prefer`) is that backend or `TeeUnavailableError`: never a
fallback. Every path is a parameter, so tests point detection at temporary directories.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from enclave.errors import TeeUnavailableError
from enclave.tee.base import TeeBackend
from enclave.tee.device_files import DeviceFiles
from enclave.tee.dstack import DEFAULT_DSTACK_SOCKETS, DstackTdx
from enclave.tee.sgx import DEFAULT_ATTESTATION_ROOT, GramineSgx
from enclave.tee.tdx import DEFAULT_MEASUREMENTS, DEFAULT_TSM_REPORT_ROOT, LinuxTdx

__all__ = ["BACKEND_NAMES", "detect"]

BACKEND_NAMES = ("dstack", "tdx", "sgx", "sim")
"""The names `prefer` accepts, in auto-detection order."""

_log = logging.getLogger(__name__)


def detect(
    *,
    prefer: str | None = None,
    sim_factory: Callable[[], TeeBackend] | None = None,
    dstack_sockets: Sequence[Path] = DEFAULT_DSTACK_SOCKETS,
    tsm_report_root: Path = DEFAULT_TSM_REPORT_ROOT,
    tdx_measurements: Path = DEFAULT_MEASUREMENTS,
    gramine_root: Path = DEFAULT_ATTESTATION_ROOT,
    files: DeviceFiles | None = None,
) -> TeeBackend:
    """The backend named by `prefer` (one of `BACKEND_NAMES`), or the first one present.

    `sim_factory` builds the simulator (default: an ephemeral `enclave.tee.sim.SimulatedTdx`);
    `files` is the file-operation seam the TDX and SGX backends use. Raises
    `TeeUnavailableError` when the preferred backend is absent, naming what is missing, and
    `ValueError` for an unknown name."""
    builders: dict[str, Callable[[], TeeBackend]] = {
        "dstack": lambda: _dstack(dstack_sockets),
        "tdx": lambda: LinuxTdx(tsm_report_root, tdx_measurements, files=files),
        "sgx": lambda: GramineSgx(gramine_root, files=files),
        "sim": sim_factory or _simulator,
    }
    if prefer is not None:
        if prefer not in builders:
            raise ValueError(f"unknown TEE backend {prefer!r}; expected one of {BACKEND_NAMES}")
        return builders[prefer]()
    skipped = []
    for name in BACKEND_NAMES[:-1]:
        try:
            return builders[name]()
        except TeeUnavailableError as exc:
            skipped.append(f"{name}: {exc.message}")
    _log.warning("no TEE found, using the SIMULATED TEE (untrusted quotes): %s", "; ".join(skipped))
    return builders["sim"]()


def _dstack(sockets: Sequence[Path]) -> DstackTdx:
    for socket in sockets:
        if socket.is_socket():
            return DstackTdx(socket)
    raise TeeUnavailableError(
        "no dstack guest-agent socket at " + ", ".join(str(s) for s in sockets)
    )


def _simulator() -> TeeBackend:
    """An ephemeral simulated TDX machine, imported only when it is used."""
    from enclave.tee.sim import SimulatedTdx

    return SimulatedTdx(now=datetime.now(UTC))
