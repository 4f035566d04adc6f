"""Where the CLI gets what verification needs: collateral (a file, a PCCS / Intel PCS through
the on-disk cache), the CPU trust anchor (Intel's, a given root, or the local simulator's) and
the GPU trust anchors (NVIDIA's device root, plus the local simulated GPU's when allowed)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from attestation import Collateral, TrustAnchor
from attestation.gpu import nvidia_device_root
from attestation.pcs import INTEL_PCS_URL, CachedCollateralSource, CollateralCache, PcsClient
from enclava import config
from enclava.output import BadInputError
from enclave.errors import TeeUnavailableError
from enclave.tee.sim import SimulatedTdx, load_trust_anchor
from enclave.tee.sim_gpu import load_gpu_trust_anchor

__all__ = [
    "choose_collateral",
    "fetch_collateral",
    "gpu_trust_anchors",
    "read_collateral",
    "trust_anchor",
]


def read_collateral(path: Path) -> Collateral:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        message = f"cannot read collateral file {path}: {exc}"
        raise BadInputError("unreadable_input", message) from None
    return Collateral.from_json(text)


def fetch_collateral(
    raw_quote: bytes, base_url: str | None, cache: Path | None, now: datetime
) -> Collateral:
    """From a PCCS (or Intel PCS by default), through the on-disk cache."""
    with PcsClient(base_url or INTEL_PCS_URL) as client:
        source = CachedCollateralSource(client, CollateralCache(config.cache_dir(cache)))
        return source.collateral_for(raw_quote, now=now)


def choose_collateral(
    quote: bytes,
    *,
    collateral: Path | None,
    pccs: str | None,
    cache_dir: Path | None,
    local_simulator: bool,
    state: Path | None,
    now: datetime,
) -> Collateral:
    """The collateral to verify `quote` against: the `--collateral` file; else, when
    `local_simulator` (the quote comes from this machine's simulated TEE and the caller allows
    it), the simulator's own; else a PCCS / Intel PCS through the on-disk cache."""
    if collateral is not None and pccs is not None:
        raise BadInputError("bad_usage", "pass either --collateral or --pccs, not both")
    if collateral is not None:
        return read_collateral(collateral)
    if local_simulator:
        sim_dir = config.sim_state_dir(config.state_dir(state))
        return SimulatedTdx(sim_dir, now=now).collateral(now=now)
    return fetch_collateral(quote, pccs, cache_dir, now)


def trust_anchor(root: Path | None, *, simulated: bool, state: Path | None) -> TrustAnchor:
    """`root` if given; else the local simulator's when simulated TEEs are allowed; else Intel's."""
    if root is None and simulated:
        return load_trust_anchor(config.sim_state_dir(config.state_dir(state)))
    if root is None:
        return TrustAnchor.intel()
    try:
        data = root.read_bytes()
    except OSError as exc:
        message = f"cannot read root {root}: {exc.strerror}"
        raise BadInputError("unreadable_input", message) from None
    return TrustAnchor.from_bytes(data, f"custom root ({root.name})")


def gpu_trust_anchors(allow_simulated: bool, state: Path | None) -> tuple[TrustAnchor, ...]:
    """NVIDIA's device root; with `allow_simulated`, also the local simulated GPU's root when
    the state directory has one (`gateway serve --gpu sim` creates it)."""
    if not allow_simulated:
        return (nvidia_device_root(),)
    try:
        sim = load_gpu_trust_anchor(config.sim_state_dir(config.state_dir(state)))
    except TeeUnavailableError:
        return (nvidia_device_root(),)
    return (nvidia_device_root(), sim)
