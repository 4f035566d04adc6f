"""The service's collateral: which trust anchor and which collateral a quote is verified with,
kept in memory, refreshed before it goes stale, served stale-but-valid while the upstream is
down, and refused once expired.

Collateral comes from the `TrustDomain`s given (`attestation.service.upstreams`): Intel's root
with Intel PCS / a PCCS or an offline directory of bundles; in dev, also a simulator's root with
its own collateral. The first domain is the default. A quote goes
to the domain whose root is the last certificate of its embedded PCK chain, else the default;
that certificate only *routes* the quote: the domain's pinned root is what verification trusts.

Each collateral entry moves through three states, by the clock the caller passes:

    fresh    now < refresh_at                    served as is
    stale    refresh_at <= now < next_update     served; one refresh at a time is attempted,
                                                 at most every `retry_after`
    expired  next_update <= now                  refused (`CollateralRefusedError`) unless the
                                                 upstream has newer

`next_update` is the earliest nextUpdate of TCB info, QE identity and both CRLs; `refresh_at`
is `min(next_update - refresh_before, issued + refresh_every)`, `issued` the older issue date
of TCB info and QE identity. Nothing here is trusted: the verifier checks every signature.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from attestation.collateral import Collateral, parse_qe_identity, parse_tcb_info
from attestation.errors import CollateralFormatError, CollateralSourceError
from attestation.pcs import CollateralKey, earliest_next_update
from attestation.pki import TrustAnchor
from attestation.quote import CertificationDataType, Quote
from attestation.service.errors import CollateralRefusedError, InvalidRequestError
from attestation.service.upstreams import TrustDomain
from attestation.verify import QuoteVerifier

__all__ = ["CollateralProvider", "CollateralStatus", "Lookup", "Route"]

log = logging.getLogger(__name__)
_UPSTREAM_ERRORS = (CollateralSourceError, CollateralFormatError)
_LOCK_STRIPES = 64
_MAX_FAILURES = 1024


@dataclass(frozen=True, slots=True)
class Route:
    """Where a quote goes: its domain (index), the domain's verifier, its collateral key.
    `anchored`: its PCK chain's signatures lead to the domain's root (checked once per chain,
    without revocation or validity: that is the verifier's job)."""

    domain: int
    verifier: QuoteVerifier
    key: CollateralKey
    anchored: bool = True


@dataclass(frozen=True, slots=True)
class _Entry:
    collateral: Collateral
    next_update: datetime
    refresh_at: datetime
    issued: datetime
    last_attempt: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """What memory holds for a route. `collateral` is None when the caller must `obtain` it
    (absent or expired); `refresh` is True for the one caller that should `refresh` it."""

    collateral: Collateral | None
    state: str
    next_update: datetime | None
    refresh: bool = False


@dataclass(frozen=True, slots=True)
class CollateralStatus:
    upstream: str
    key: CollateralKey
    state: str
    issued: datetime
    next_update: datetime
    refresh_at: datetime
    last_error: str | None


class _Lru:
    def __init__(self, size: int) -> None:
        self._data: OrderedDict[bytes, Route] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Route | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: bytes, value: Route) -> None:
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._size:
                self._data.popitem(last=False)


class CollateralProvider:
    """Collateral for quotes, by trust domain (see the module docstring). Thread-safe:
    `route` and `lookup` never block on the network; `obtain` and `refresh` may."""

    def __init__(
        self,
        domains: Sequence[TrustDomain],
        *,
        refresh_before: timedelta = timedelta(days=7),
        refresh_every: timedelta | None = timedelta(days=1),
        retry_after: timedelta = timedelta(minutes=5),
    ) -> None:
        if not domains:
            raise ValueError("a collateral provider needs at least one trust domain")
        self.domains = tuple(domains)
        self._verifiers = tuple(QuoteVerifier(d.anchor) for d in self.domains)
        self._by_root = {d.anchor.fingerprint: i for i, d in enumerate(self.domains)}
        self._refresh_before = refresh_before
        self._refresh_every = refresh_every
        self._retry_after = retry_after
        self._entries: dict[tuple[int, CollateralKey], _Entry] = {}
        self._failures: dict[tuple[int, CollateralKey], tuple[datetime, str]] = {}
        self._routes = _Lru(1024)
        self._guard = threading.Lock()
        self._locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))

    def route(self, quote: Quote) -> Route:
        """The domain and collateral key of a parsed quote; `InvalidRequestError` if the quote
        carries no PCK certificate chain (nothing says which collateral it needs)."""
        chain = _pck_chain(quote)
        digest = hashlib.sha256(chain).digest()
        route = self._routes.get(digest)
        if route is None:
            try:
                certs = x509.load_pem_x509_certificates(chain)
            except ValueError:
                certs = []
            root = certs[-1].fingerprint(hashes.SHA256()).hex() if certs else ""
            domain = self._by_root.get(root, 0)
            try:
                key = self.domains[domain].upstream.key_for(quote)
            except CollateralSourceError as exc:
                raise InvalidRequestError(exc.message, code="unsupported_quote") from None
            anchored = _anchored(certs, self.domains[domain].anchor)
            route = Route(domain, self._verifiers[domain], key, anchored)
            self._routes.put(digest, route)
        return route

    def lookup(self, route: Route, now: datetime) -> Lookup:
        ident = (route.domain, route.key)
        entry = self._entries.get(ident)
        if entry is None or now >= entry.next_update:
            return Lookup(None, "missing" if entry is None else "expired", None)
        if now < entry.refresh_at:
            return Lookup(entry.collateral, "fresh", entry.next_update)
        return Lookup(entry.collateral, "stale", entry.next_update, self._claim(ident, now))

    def _claim(self, ident: tuple[int, CollateralKey], now: datetime) -> bool:
        """Take the right to refresh `ident` now (at most once per `retry_after`)."""
        with self._guard:
            entry = self._entries.get(ident)
            if entry is None:
                return False
            if entry.last_attempt is not None and now - entry.last_attempt < self._retry_after:
                return False
            self._entries[ident] = replace(entry, last_attempt=now)
            return True

    def _lock(self, ident: tuple[int, CollateralKey]) -> threading.Lock:
        """Striped: memory stays bounded whatever keys (FMSPCs) quotes name."""
        return self._locks[hash(ident) % _LOCK_STRIPES]

    def obtain(self, route: Route, now: datetime) -> Lookup:
        """Collateral for `route` at `now`, fetching it if memory has none that is valid.
        Raises `CollateralSourceError` (nothing available) or `CollateralRefusedError`
        (only expired collateral available)."""
        ident = (route.domain, route.key)
        with self._lock(ident):
            found = self.lookup(route, now)
            if found.collateral is not None:
                return found
            upstream = self.domains[route.domain].upstream
            if not route.anchored:
                raise InvalidRequestError(
                    "the quote's PCK certificate chain does not lead to a trusted root "
                    f"({self.domains[route.domain].anchor.label}): no collateral is fetched for it",
                    code="untrusted_pck_chain",
                )
            if ident not in self._entries:
                stored = upstream.stored(route.key, now)
                if stored is not None:
                    self._store(ident, stored, None)
                    found = self.lookup(route, now)
                    if found.collateral is not None:
                        return found
            with self._guard:
                failure = self._failures.get(ident)
            if failure is not None and now - failure[0] < self._retry_after:
                retry = (failure[0] + self._retry_after).isoformat()
                self._refuse(ident, f"{failure[1]}; the upstream is retried after {retry}")
            try:
                self._store(ident, upstream.fetch(route.key, now), now)
            except _UPSTREAM_ERRORS as exc:
                self._fail(ident, now, exc.message)
            found = self.lookup(route, now)
            if found.collateral is None:
                self._fail(ident, now, f"{upstream.label} has nothing newer")
            with self._guard:
                self._failures.pop(ident, None)
            return found

    def _fail(self, ident: tuple[int, CollateralKey], now: datetime, problem: str) -> NoReturn:
        """Remember a failed upstream attempt (retried after `retry_after`) and refuse."""
        with self._guard:
            self._failures[ident] = (now, problem)
            if len(self._failures) > _MAX_FAILURES:
                self._failures.pop(next(iter(self._failures)))
        self._refuse(ident, problem)

    def refresh(self, route: Route, now: datetime) -> bool:
        """Fetch newer collateral for `route` (after `lookup` said `refresh`). On failure the
        current entry stays (served while valid) and the error is kept for `status`."""
        ident = (route.domain, route.key)
        upstream = self.domains[route.domain].upstream
        with self._lock(ident):
            try:
                collateral = upstream.fetch(route.key, now)
            except _UPSTREAM_ERRORS as exc:
                log.warning("collateral refresh from %s failed: %s", upstream.label, exc.message)
                with self._guard:
                    entry = self._entries.get(ident)
                    if entry is not None:
                        self._entries[ident] = replace(entry, last_error=exc.message)
                return False
            self._store(ident, collateral, now)
            return True

    def refresh_due(self, now: datetime) -> int:
        """Refresh every entry that is stale or expired (the background refresher); returns
        how many were refreshed."""
        done = 0
        for (domain, key), entry in list(self._entries.items()):
            if now < entry.refresh_at:
                continue
            if not self._claim((domain, key), now):
                continue
            route = Route(domain, self._verifiers[domain], key)
            done += self.refresh(route, now)
        return done

    def status(self, now: datetime) -> list[CollateralStatus]:
        out = []
        for (domain, key), e in list(self._entries.items()):
            state = (
                "expired" if now >= e.next_update else "stale" if now >= e.refresh_at else "fresh"
            )
            upstream = self.domains[domain].upstream.label
            out.append(
                CollateralStatus(
                    upstream, key, state, e.issued, e.next_update, e.refresh_at, e.last_error
                )
            )
        return out

    def close(self) -> None:
        for domain in self.domains:
            domain.upstream.close()

    def _store(
        self, ident: tuple[int, CollateralKey], collateral: Collateral, attempt: datetime | None
    ) -> None:
        next_update = earliest_next_update(collateral)
        issued = min(
            parse_tcb_info(collateral.tcb_info).issue_date,
            parse_qe_identity(collateral.qe_identity).issue_date,
        )
        refresh_at = next_update - self._refresh_before
        if self._refresh_every is not None:
            refresh_at = min(refresh_at, issued + self._refresh_every)
        entry = _Entry(collateral, next_update, refresh_at, issued, attempt)
        with self._guard:
            current = self._entries.get(ident)
            if current is not None and current.collateral.digest == collateral.digest:
                entry = replace(current, last_attempt=attempt or current.last_attempt)
            self._entries[ident] = entry

    def _refuse(self, ident: tuple[int, CollateralKey], problem: str) -> NoReturn:
        entry = self._entries.get(ident)
        _, key = ident
        what = f"{key.tee.upper()} FMSPC {key.fmspc} ({key.ca} CA)"
        if entry is not None:
            raise CollateralRefusedError(
                f"collateral for {what} expired at {entry.next_update.isoformat()} and no newer "
                f"is available ({problem}); refusing to verify with expired collateral"
            )
        raise CollateralSourceError(f"no collateral for {what}: {problem}")


def _pck_chain(quote: Quote) -> bytes:
    block = quote.signature_data.qe_report_certification
    cert_data = None if block is None else block.certification_data
    if cert_data is None or cert_data.type != CertificationDataType.PCK_CERT_CHAIN:
        raise InvalidRequestError(
            "the quote carries no PCK certificate chain (certification data type 5): its "
            "collateral cannot be determined",
            code="unsupported_quote",
        )
    return cert_data.data


def _anchored(certs: list[x509.Certificate], anchor: TrustAnchor) -> bool:
    """Whether each certificate is signed by the next, and the last is the anchor or signed by
    it. Only keeps forged chains from making us fetch collateral: not a validation."""
    if not certs:
        return False
    try:
        for child, parent in pairwise(certs):
            child.verify_directly_issued_by(parent)
        last = certs[-1]
        if last.fingerprint(hashes.SHA256()).hex() != anchor.fingerprint:
            last.verify_directly_issued_by(anchor.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
