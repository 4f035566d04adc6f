"""Where collateral comes from: an `Upstream` per trust domain.

    PcsUpstream       Intel PCS or a PCCS (API v4), through the on-disk `CollateralCache`
    OfflineUpstream   a directory of collateral bundles (no network at all)
    CallableUpstream  a function of the key and the time (a simulator's own collateral, in dev)

A `TrustDomain` pairs a pinned root with the upstream whose collateral is signed under it; a
simulated machine's domain may also name the root of its simulated GPU (`gpu_anchor`), which the
service then trusts for GPU reports beside NVIDIA's (dev configurations only, like the
simulator's TDX root). Nothing an upstream returns is trusted: the verifier checks every
signature and chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from attestation.collateral import Collateral, parse_tcb_info
from attestation.errors import CollateralFormatError, CollateralSourceError
from attestation.pcs import CollateralCache, CollateralKey, PcsClient, collateral_key
from attestation.pki import TrustAnchor
from attestation.quote import Quote

__all__ = [
    "CallableUpstream",
    "CollateralIssuer",
    "GpuIssuer",
    "OfflineUpstream",
    "PcsUpstream",
    "TrustDomain",
    "Upstream",
    "simulator_domain",
]

log = logging.getLogger(__name__)


class Upstream(Protocol):
    """Where a domain's collateral comes from. `fetch` may block (network); it raises
    `CollateralSourceError` / `CollateralFormatError` when it has nothing usable."""

    @property
    def label(self) -> str: ...

    def key_for(self, quote: Quote) -> CollateralKey: ...

    def stored(self, key: CollateralKey, now: datetime) -> Collateral | None:
        """Collateral already at hand without the network (a disk cache), if any."""
        ...

    def fetch(self, key: CollateralKey, now: datetime) -> Collateral: ...

    def close(self) -> None: ...


class PcsUpstream:
    """Intel PCS or a PCCS (API v4), with the on-disk `CollateralCache` (None: no disk)."""

    def __init__(self, client: PcsClient, cache: CollateralCache | None) -> None:
        self.client = client
        self.cache = cache
        self.label = f"pcs {client.base_url}"

    def key_for(self, quote: Quote) -> CollateralKey:
        return self.client.key_for(quote)

    def stored(self, key: CollateralKey, now: datetime) -> Collateral | None:
        return None if self.cache is None else self.cache.get(key, now=now)

    def fetch(self, key: CollateralKey, now: datetime) -> Collateral:
        collateral = self.client.fetch_key(key)
        if self.cache is not None:
            try:
                self.cache.put(key, collateral)
            except CollateralSourceError as exc:
                log.warning("collateral not cached: %s", exc.message)
        return collateral

    def close(self) -> None:
        self.client.close()


def _bundle_key(collateral: Collateral, base_url: str) -> CollateralKey:
    """The key a bundle serves: TEE and FMSPC from its TCB info, PCK CA from its PCK CRL."""
    tcb_info = parse_tcb_info(collateral.tcb_info)
    try:
        issuer = x509.load_der_x509_crl(collateral.pck_crl).issuer
    except ValueError:
        raise CollateralFormatError("pck_crl is not a DER CRL") from None
    names = [str(a.value) for a in issuer.get_attributes_for_oid(NameOID.COMMON_NAME)]
    ca = "processor" if any("Processor" in n for n in names) else "platform"
    return CollateralKey(base_url, tcb_info.id.lower(), tcb_info.fmspc.hex().upper(), ca)


class OfflineUpstream:
    """Collateral bundles (`*.json`, the dcap-qvl / PCCS `QuoteCollateralV3` layout) in a
    directory, indexed by the TEE, FMSPC and PCK CA they serve; for one key, the bundle with
    the latest TCB info issue date wins. Re-read on every fetch (a refresh picks up new files);
    unreadable files are skipped with a warning."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.label = f"offline {directory}"
        self._base = f"offline:{directory}"
        self._bundles = self._index()

    def _index(self) -> dict[CollateralKey, Collateral]:
        found: dict[CollateralKey, tuple[datetime, Collateral]] = {}
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError as exc:
            raise CollateralSourceError(f"cannot list {self.directory}: {exc}") from None
        for path in paths:
            try:
                collateral = Collateral.from_json(path.read_bytes())
                key = _bundle_key(collateral, self._base)
                issued = parse_tcb_info(collateral.tcb_info).issue_date
            except (OSError, CollateralFormatError) as exc:
                log.warning("skipping collateral bundle %s: %s", path, exc)
                continue
            if key not in found or issued > found[key][0]:
                found[key] = (issued, collateral)
        return {key: c for key, (_, c) in found.items()}

    def key_for(self, quote: Quote) -> CollateralKey:
        return collateral_key(quote, self._base)

    def stored(self, key: CollateralKey, now: datetime) -> Collateral | None:
        return self._bundles.get(key)

    def fetch(self, key: CollateralKey, now: datetime) -> Collateral:
        self._bundles = self._index()
        collateral = self._bundles.get(key)
        if collateral is None:
            raise CollateralSourceError(
                f"no collateral bundle in {self.directory} for {key.tee.upper()} FMSPC "
                f"{key.fmspc} ({key.ca} CA)"
            )
        return collateral

    def close(self) -> None:
        pass


class CallableUpstream:
    """Collateral from a function of the key and the time (the simulator's, in dev)."""

    def __init__(self, label: str, issue: Callable[[CollateralKey, datetime], Collateral]):
        self.label = label
        self._issue = issue

    def key_for(self, quote: Quote) -> CollateralKey:
        return collateral_key(quote, self.label)

    def stored(self, key: CollateralKey, now: datetime) -> Collateral | None:
        return None

    def fetch(self, key: CollateralKey, now: datetime) -> Collateral:
        return self._issue(key, now)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TrustDomain:
    anchor: TrustAnchor
    upstream: Upstream
    gpu_anchor: TrustAnchor | None = None


class CollateralIssuer(Protocol):
    """A TEE that is its own collateral authority (`enclave.tee.sim.SimulatedTdx` fits)."""

    @property
    def trust_anchor(self) -> TrustAnchor: ...

    def collateral(self, *, now: datetime) -> Collateral: ...


class GpuIssuer(Protocol):
    """A simulated GPU (`enclave.tee.sim_gpu.SimulatedGpu` fits): only its root matters here."""

    @property
    def trust_anchor(self) -> TrustAnchor: ...


def simulator_domain(
    machine: CollateralIssuer, label: str = "simulator", *, gpu: GpuIssuer | None = None
) -> TrustDomain:
    """The trust domain of a simulated TEE: its root, and the collateral it issues (dev); with
    `gpu`, also the root of the machine's simulated GPU."""
    return TrustDomain(
        machine.trust_anchor,
        CallableUpstream(label, lambda key, now: machine.collateral(now=now)),
        None if gpu is None else gpu.trust_anchor,
    )
