"""The per-GPU policy rules: what `attestation.policy.Policy.evaluate_gpu` applies to one
verified GPU of an attestation bundle (`attestation.evidence`).

Kept apart from `attestation.policy` (which holds the fields, the file schema and the CPU rules)
so that module stays readable; the rules read the policy through `GpuRules`, the GPU fields of
`Policy`. A GPU's model is the chip its leaf certificate names (`GH100`: Hopper, the chip of
H100 and H200 boards alike). Its CC state is what the driver inside the attested TD reports:
the signed SPDM report carries no CC bit, so the state is exactly as trustworthy as that TD.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from attestation.gpu.verify import VerifiedGpu

__all__ = ["GpuRules", "GpuSubject", "gpu_reasons"]


@dataclass(frozen=True, slots=True)
class GpuSubject:
    """One verified GPU as a policy judges it. `cc_enabled` / `cc_devtools` are the CC state
    the driver inside the attested TD reports beside the (signed) report."""

    model: str
    driver_version: str
    simulated: bool
    trust_anchor: str
    cc_enabled: bool
    cc_devtools: bool

    @classmethod
    def of(cls, v: VerifiedGpu, *, cc_enabled: bool, cc_devtools: bool) -> GpuSubject:
        return cls(v.model, v.driver_version, v.simulated, v.trust_anchor, cc_enabled, cc_devtools)


class GpuRules(Protocol):
    """The GPU fields of `attestation.policy.Policy`."""

    @property
    def gpu_models(self) -> frozenset[str] | None: ...

    @property
    def require_gpu_cc(self) -> bool: ...

    @property
    def allow_gpu_devtools(self) -> bool: ...

    @property
    def min_gpu_driver_version(self) -> str | None: ...

    @property
    def allow_simulated_gpu(self) -> bool: ...


def gpu_reasons(policy: GpuRules, gpu: GpuSubject) -> tuple[str, ...]:
    """Why `policy` does not accept `gpu` ("<rule>: <why>" each); empty when it does."""
    return tuple(r for rule in _RULES if (r := rule(policy, gpu)) is not None)


def _simulated(p: GpuRules, g: GpuSubject) -> str | None:
    if not g.simulated or p.allow_simulated_gpu:
        return None
    return f"gpu.trust_anchor: rooted in {g.trust_anchor!r}, not NVIDIA (allow_simulated_gpu off)"


def _model(p: GpuRules, g: GpuSubject) -> str | None:
    if p.gpu_models is None or g.model in p.gpu_models:
        return None
    allowed = ", ".join(sorted(p.gpu_models)) or "empty: it denies every model"
    return f"gpu.model: {g.model} is not in the allow-list ({allowed})"


def _cc(p: GpuRules, g: GpuSubject) -> str | None:
    if p.require_gpu_cc and not g.cc_enabled:
        return "gpu.cc: confidential computing is off (the policy requires it on)"
    if g.cc_devtools and not p.allow_gpu_devtools:
        return "gpu.cc: CC developer-tools mode, the GPU is debuggable (allow_gpu_devtools off)"
    return None


def _driver(p: GpuRules, g: GpuSubject) -> str | None:
    if p.min_gpu_driver_version is None:
        return None
    have, least = _version(g.driver_version), _version(p.min_gpu_driver_version)
    if least is None:
        return f"gpu.driver: the minimum {p.min_gpu_driver_version!r} is not a dotted number"
    if have is not None and have >= least:
        return None
    return f"gpu.driver: {g.driver_version!r} is below the minimum {p.min_gpu_driver_version}"


def _version(text: str) -> tuple[int, ...] | None:
    """`550.90.07` -> (550, 90, 7); None for anything but dot-separated decimal numbers."""
    parts = text.split(".")
    return tuple(int(x) for x in parts) if all(x.isdecimal() for x in parts) else None


_RULES: tuple[Callable[[GpuRules, GpuSubject], str | None], ...] = (
    _simulated,
    _model,
    _cc,
    _driver,
)
