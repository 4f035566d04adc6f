"""Where the CLI keeps things: one state directory (the simulated machine, sealed keys) and
one cache directory (collateral). Explicit options win, then environment variables, then the
XDG defaults."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "sealed_keys_path", "sim_state_dir", "state_dir"]


def state_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    if env := os.environ.get("ENCLAVA_STATE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "enclava"


def cache_dir(explicit: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "enclava" / "collateral"


def sim_state_dir(state: Path) -> Path:
    """The simulated TDX machine inside a state directory."""
    return state / "sim"


def sealed_keys_path(state: Path) -> Path:
    """The worker's sealed identity keys inside a state directory."""
    return state / "keys.sealed.json"
