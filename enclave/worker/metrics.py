"""Prometheus metrics of one chain worker, in the `CollectorRegistry` the caller passes in (never
the global one, so two workers in one process, e.g. in tests, count separately);
`enclava worker run --metrics-port` serves it.

    enclava_worker_requests_recorded_total           requests read from the chain and recorded
    enclava_worker_requests_fulfilled_total          fulfilled by this worker's transactions
    enclava_worker_requests_closed_elsewhere_total   closed first by a peer or the caller
    enclava_worker_requests_failed_total{code}       given up: expired, an agent error code or a
                                                     revert name (`unknown` when not known)
    enclava_worker_transactions_total                fulfil / fulfillBatch transactions mined
    enclava_worker_step_errors_total                 errors a step carried on past (chain down, ...)
    enclava_worker_step_duration_seconds             histogram of one `Worker.step`
    enclava_worker_open_jobs{agent,contract}         requests recorded and not yet closed
    enclava_worker_cursor_lag_blocks{agent,contract} head block - last block read (at least the
                                                     confirmation depth when caught up)

`agent` is the bundle's name and `contract` the agent contract's address: two contracts may pin
the same bundle.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from enclave.worker.loop import StepReport

__all__ = ["WorkerMetrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.recorded = self._counter("requests_recorded", "Requests read and recorded")
        self.fulfilled = self._counter("requests_fulfilled", "Requests this worker fulfilled")
        self.closed_elsewhere = self._counter(
            "requests_closed_elsewhere", "Requests closed first by a peer or the caller"
        )
        self.failed = self._counter("requests_failed", "Requests given up, by code", ["code"])
        self.transactions = self._counter("transactions", "Fulfilment transactions mined")
        self.step_errors = self._counter("step_errors", "Errors a step carried on past")
        self.step_duration = Histogram(
            "enclava_worker_step_duration_seconds",
            "Time of one worker step over all agents, seconds",
            buckets=_BUCKETS,
            registry=registry,
        )
        self.open_jobs = Gauge(
            "enclava_worker_open_jobs",
            "Requests recorded and not yet fulfilled, closed or failed",
            ["agent", "contract"],
            registry=registry,
        )
        self.cursor_lag = Gauge(
            "enclava_worker_cursor_lag_blocks",
            "Blocks between the chain head and the last block the worker read",
            ["agent", "contract"],
            registry=registry,
        )

    def _counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(f"enclava_worker_{name}", doc, labels, registry=self.registry)

    def observe_step(
        self, report: StepReport, seconds: float, failure_codes: Sequence[str] = ()
    ) -> None:
        """Count what one step did. `failure_codes`: the code of each job it failed, where known;
        failures beyond them count as `unknown`."""
        self.recorded.inc(report.recorded)
        self.fulfilled.inc(report.fulfilled)
        self.closed_elsewhere.inc(report.closed_elsewhere)
        self.transactions.inc(report.transactions)
        self.step_errors.inc(len(report.errors))
        self.step_duration.observe(seconds)
        for code in failure_codes:
            self.failed.labels(code=code).inc()
        unknown = report.failed - len(failure_codes)
        if unknown > 0:
            self.failed.labels(code="unknown").inc(unknown)

    def observe_backlog(self, agent: str, contract: str, *, open_jobs: int, lag: int) -> None:
        self.open_jobs.labels(agent=agent, contract=contract).set(open_jobs)
        self.cursor_lag.labels(agent=agent, contract=contract).set(max(lag, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
