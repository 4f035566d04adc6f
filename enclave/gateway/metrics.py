"""Prometheus metrics of one gateway app, in its own `CollectorRegistry` (never the global one,
so two apps in one process count separately).

    enclava_gateway_invocations_total{agent,outcome}   ok | <error code>
    enclava_gateway_invoke_duration_seconds{agent}     histogram, admitted calls only
    enclava_gateway_in_flight                          calls admitted and not yet answered
    enclava_gateway_attestations_total{endpoint}       quotes served (enclava | report)
    enclava_gateway_errors_total{code}                 every error answer, by code
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """The gateway's metrics in `registry` (a fresh one by default; a worker process passes its
    own, so `GET /metrics` also shows the chain worker's)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        self.invocations = Counter(
            "enclava_gateway_invocations",
            "Agent invocations by agent and outcome (ok or the error code)",
            ["agent", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "enclava_gateway_invoke_duration_seconds",
            "Time from admission to answer of an agent invocation, seconds",
            ["agent"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "enclava_gateway_in_flight",
            "Invocations admitted and not yet answered",
            registry=self.registry,
        )
        self.attestations = Counter(
            "enclava_gateway_attestations",
            "Quotes served, by endpoint",
            ["endpoint"],
            registry=self.registry,
        )
        self.errors = Counter(
            "enclava_gateway_errors",
            "Error answers by code",
            ["code"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
