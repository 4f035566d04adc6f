"""GPU evidence from real NVIDIA GPUs through NVML (the `nvidia-ml-py` package, `import pynvml`).

Per GPU: the SPDM attestation report over the caller's 32-byte nonce
(`nvmlDeviceGetConfComputeGpuAttestationReport`), the attestation certificate chain, PEM, leaf
first (`nvmlDeviceGetConfComputeGpuCertificate`), and the system's confidential-computing state
(`nvmlSystemGetConfComputeState`). The report is signed by the GPU; the CC state is what the
driver inside this TD says, so it is only as trustworthy as the attested TD reporting it.

`pynvml` is imported on first use, so machines without it (or without a GPU) import this
module fine. Tests pass a module-like object with the same functions and constants instead
(recorded responses). No library, no NVML library or driver, no GPU, or CC off: a
`TeeUnavailableError`; NVML failing or answering out of protocol: a `TeeProtocolError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from attestation.gpu import GpuReportFormatError, parse_gpu_report
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.tee.gpu import GPU_NONCE_SIZE, CcState, GpuEvidence

__all__ = ["NvmlGpus", "check_gpu_report"]

_ENVIRONMENTS = {0: "unavailable", 1: "sim", 2: "prod"}
_ARCHITECTURES = {7: "ampere", 8: "ada", 9: "hopper", 10: "blackwell"}
# NVML error codes meaning "nothing to attest here" rather than "NVML misbehaved".
_UNAVAILABLE = (
    "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_NO_PERMISSION",
    "NVML_ERROR_GPU_IS_LOST",
)


def check_gpu_report(raw: bytes, nonce: bytes, *, source: str) -> bytes:
    """`raw` if it parses as an attestation report over `nonce`; `TeeProtocolError` naming
    `source` otherwise (a truncated answer, another request's report). Signatures are the
    verifier's job."""
    try:
        report = parse_gpu_report(raw)
    except GpuReportFormatError as exc:
        raise TeeProtocolError(f"{source} returned a malformed report: {exc.message}") from None
    if report.nonce != nonce:
        raise TeeProtocolError(f"{source} returned a report over another nonce")
    return raw


class NvmlGpus:
    """Every GPU NVML sees. `nvml`: the `pynvml` module or a stand-in (None: import `pynvml`
    when first needed). Each call opens and closes its own NVML session."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml = nvml

    def cc_state(self) -> CcState:
        with self._session() as nvml:
            return self._cc_state(nvml)

    def collect(self, nonce: bytes) -> tuple[GpuEvidence, ...]:
        """Evidence from every GPU over `nonce` (32 bytes: `attestation.gpu.gpu_nonce`)."""
        if not isinstance(nonce, bytes) or len(nonce) != GPU_NONCE_SIZE:
            raise ValueError(f"a GPU nonce is exactly {GPU_NONCE_SIZE} bytes")
        with self._session() as nvml:
            state = self._cc_state(nvml)
            if not state.enabled:
                raise TeeUnavailableError(
                    "GPU confidential computing is off (nvidia-smi conf-compute -srs 1 turns "
                    "it on): an attestation report would attest nothing"
                )
            count = _call(nvml, "nvmlDeviceGetCount")
            if count == 0:
                raise TeeUnavailableError("NVML sees no NVIDIA GPU")
            return tuple(self._evidence(nvml, i, nonce, state) for i in range(count))

    def _evidence(self, nvml: Any, index: int, nonce: bytes, state: CcState) -> GpuEvidence:
        handle = _call(nvml, "nvmlDeviceGetHandleByIndex", index)
        report = _call(nvml, "nvmlDeviceGetConfComputeGpuAttestationReport", handle, nonce)
        certs = _call(nvml, "nvmlDeviceGetConfComputeGpuCertificate", handle)
        uuid = _call(nvml, "nvmlDeviceGetUUID", handle)
        arch = _call(nvml, "nvmlDeviceGetArchitecture", handle)
        source = f"NVML (GPU {index})"
        return GpuEvidence(
            index=index,
            uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
            arch=_ARCHITECTURES.get(arch, f"unknown({arch})"),
            report=check_gpu_report(
                _sized(report, "attestationReport", "attestationReportSize", source),
                nonce,
                source=source,
            ),
            cert_chain=_sized(certs, "attestationCertChain", "attestationCertChainSize", source),
            cc_state=state,
        )

    def _cc_state(self, nvml: Any) -> CcState:
        raw = _call(nvml, "nvmlSystemGetConfComputeState")
        return CcState(
            enabled=raw.ccFeature != 0,
            devtools=raw.devToolsMode != 0,
            environment=_ENVIRONMENTS.get(raw.environment, f"unknown({raw.environment})"),
        )

    @contextmanager
    def _session(self) -> Iterator[Any]:
        nvml = self._nvml if self._nvml is not None else _import_pynvml()
        _call(nvml, "nvmlInit")
        try:
            yield nvml
        finally:
            _call(nvml, "nvmlShutdown")


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise TeeUnavailableError(
            "GPU attestation needs nvidia-ml-py (pip install nvidia-ml-py)"
        ) from None


def _call(nvml: Any, name: str, *args: Any) -> Any:
    """`nvml.<name>(*args)`, with NVML's errors turned into ours."""
    function: Callable[..., Any] = getattr(nvml, name)
    try:
        return function(*args)
    except nvml.NVMLError as exc:
        unavailable = {getattr(nvml, code, None) for code in _UNAVAILABLE}
        error = TeeUnavailableError if exc.value in unavailable else TeeProtocolError
        raise error(f"NVML {name} failed: {exc}") from None


def _sized(struct: Any, array: str, size: str, source: str) -> bytes:
    """The first `struct.<size>` bytes of the fixed-size array `struct.<array>`."""
    data, length = getattr(struct, array), getattr(struct, size)
    if not 0 < length <= len(data):
        raise TeeProtocolError(f"{source} reports {length} bytes of {array}, outside the buffer")
    return bytes(data[:length])
