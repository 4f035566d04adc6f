"""Prometheus metrics of one app, in its own `CollectorRegistry` (never the global one, so two
apps in one process, e.g. in tests, count separately).

    enclava_attest_verifications_total{outcome}   accepted | rejected | unverified | invalid
                                                  | unavailable
    enclava_attest_verify_duration_seconds        histogram of POST /v1/verify handling time
    enclava_attest_collateral_age_seconds{...}    now - issue date of each cached collateral
    enclava_attest_collateral_expiry_seconds{...} its earliest nextUpdate - now
    enclava_attest_collateral_state{...,state}    1 for its state (fresh | stale | expired)

With several server processes each has its own registry: a scrape sees one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from attestation.service.collateral import CollateralProvider

__all__ = ["OUTCOMES", "ServiceMetrics"]

OUTCOMES = ("accepted", "rejected", "unverified", "invalid", "unavailable")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_LABELS = ("upstream", "tee", "fmspc", "ca")


class _CollateralCollector(Collector):
    def __init__(self, provider: CollateralProvider, clock: Callable[[], datetime]) -> None:
        self._provider = provider
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        age = GaugeMetricFamily(
            "enclava_attest_collateral_age_seconds",
            "Seconds since the cached collateral was issued (older of TCB info, QE identity)",
            labels=_LABELS,
        )
        expiry = GaugeMetricFamily(
            "enclava_attest_collateral_expiry_seconds",
            "Seconds until the cached collateral's earliest nextUpdate (negative: expired)",
            labels=_LABELS,
        )
        state = GaugeMetricFamily(
            "enclava_attest_collateral_state",
            "1 for the state of each cached collateral (fresh, stale, expired)",
            labels=(*_LABELS, "state"),
        )
        for s in self._provider.status(now):
            labels = [s.upstream, s.key.tee, s.key.fmspc, s.key.ca]
            age.add_metric(labels, (now - s.issued).total_seconds())
            expiry.add_metric(labels, (s.next_update - now).total_seconds())
            for name in ("fresh", "stale", "expired"):
                state.add_metric([*labels, name], 1.0 if s.state == name else 0.0)
        return [age, expiry, state]


class ServiceMetrics:
    def __init__(self, provider: CollateralProvider, clock: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.verifications = Counter(
            "enclava_attest_verifications",
            "Verification requests by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self._by_outcome = {o: self.verifications.labels(outcome=o) for o in OUTCOMES}
        self.duration = Histogram(
            "enclava_attest_verify_duration_seconds",
            "Time to handle POST /v1/verify, seconds",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_CollateralCollector(provider, clock))

    def observe(self, outcome: str, seconds: float) -> None:
        self._by_outcome[outcome].inc()
        self.duration.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
