"""Worker telemetry: the Prometheus metrics move with each step, and each closed job is logged
with its agent, on-chain request id and tx hash or failure code (the real worker on the
embedded chain)."""

from __future__ import annotations

import logging
from contextlib import ExitStack

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from attestation.token import agent_measurement_id
from enclava.worker_commands import _serve_metrics
from enclave.gateway.metrics import GatewayMetrics
from enclave.worker import StepReport, WorkerState
from enclave.worker.metrics import WorkerMetrics
from enclave.worker.process import BoundAgent, Telemetry, WorkerProcess
from tests.contracts.conftest import TIMEOUT
from tests.enclave.test_worker import Setup, setup  # noqa: F401 - the fixture

NAMES = (
    "enclava_worker_requests_recorded_total",
    "enclava_worker_requests_fulfilled_total",
    "enclava_worker_requests_closed_elsewhere_total",
    "enclava_worker_requests_failed_total",
    "enclava_worker_transactions_total",
    "enclava_worker_step_errors_total",
    "enclava_worker_step_duration_seconds_bucket",
    "enclava_worker_open_jobs",
    "enclava_worker_cursor_lag_blocks",
)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_counters_move_with_a_step_report() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    report = StepReport(recorded=4, fulfilled=2, closed_elsewhere=1, failed=3, transactions=1)
    report.errors.append("0xabc: ChainUnavailableError: node down")
    metrics.observe_step(report, 0.2, ["expired", "expired"])
    metrics.observe_step(StepReport(recorded=1), 0.01)
    metrics.observe_backlog("sum", "0xA", open_jobs=5, lag=3)
    metrics.observe_backlog("sum", "0xB", open_jobs=0, lag=-1)  # a cursor past the head

    assert value(registry, "enclava_worker_requests_recorded_total") == 5
    assert value(registry, "enclava_worker_requests_fulfilled_total") == 2
    assert value(registry, "enclava_worker_requests_closed_elsewhere_total") == 1
    assert value(registry, "enclava_worker_requests_failed_total", code="expired") == 2
    assert value(registry, "enclava_worker_requests_failed_total", code="unknown") == 1
    assert value(registry, "enclava_worker_transactions_total") == 1
    assert value(registry, "enclava_worker_step_errors_total") == 1
    assert value(registry, "enclava_worker_step_duration_seconds_count") == 2
    assert value(registry, "enclava_worker_step_duration_seconds_sum") == pytest.approx(0.21)
    assert value(registry, "enclava_worker_open_jobs", agent="sum", contract="0xA") == 5
    assert value(registry, "enclava_worker_cursor_lag_blocks", agent="sum", contract="0xA") == 3
    assert value(registry, "enclava_worker_cursor_lag_blocks", agent="sum", contract="0xB") == 0
    text = metrics.render().decode()
    assert all(f"\n{name}" in text for name in NAMES)


def test_two_workers_count_in_their_own_registries() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    WorkerMetrics(first).observe_step(StepReport(fulfilled=1), 0.1)
    WorkerMetrics(second)
    assert value(first, "enclava_worker_requests_fulfilled_total") == 1
    assert value(second, "enclava_worker_requests_fulfilled_total") == 0


class StayingRegistrar:
    def renew(self, agents: dict[str, bytes]) -> list[str]:
        return []


class NoPeers:
    def refresh(self) -> None:
        pass


def test_a_tick_logs_and_counts_each_closed_job(
    setup: Setup,  # noqa: F811 - the imported fixture
    caplog: pytest.LogCaptureFixture,
) -> None:
    late = setup.request({"values": [1]})
    setup.stack.chain.advance_time(TIMEOUT + 60)  # `late` is past its deadline on chain
    fresh = setup.request({"values": [2, 3]})
    state = WorkerState(setup.db)
    registry = CollectorRegistry()
    chain = setup.stack.chain
    telemetry = Telemetry(state, WorkerMetrics(registry), lambda: int(chain.w3.eth.block_number))
    measurement = agent_measurement_id(setup.runtime.measurement.digest)
    bound = BoundAgent("sum", setup.agent.address.lower(), measurement, setup.runtime)
    process = WorkerProcess(
        setup.worker(state), StayingRegistrar(), NoPeers(), [bound],  # type: ignore[arg-type]
        telemetry=telemetry,
    )  # fmt: skip

    with caplog.at_level(logging.INFO, logger="enclave.worker.process"):
        process.tick()

    assert value(registry, "enclava_worker_requests_recorded_total") == 2
    assert value(registry, "enclava_worker_requests_fulfilled_total") == 1
    assert value(registry, "enclava_worker_requests_failed_total", code="expired") == 1
    assert value(registry, "enclava_worker_transactions_total") == 1
    labels = {"agent": "sum", "contract": setup.agent.address}
    assert value(registry, "enclava_worker_open_jobs", **labels) == 0
    cursor = state.cursor(setup.agent.address)
    assert cursor is not None
    lag = value(registry, "enclava_worker_cursor_lag_blocks", **labels)
    assert lag == int(chain.w3.eth.block_number) - (cursor - 1)

    logged = {r.chain_request_id: r for r in caplog.records if hasattr(r, "chain_request_id")}
    (event,) = setup.fulfilled()
    assert logged[fresh.id].tx_hash == "0x" + event["tx"]
    assert (logged[fresh.id].agent, logged[fresh.id].contract) == ("sum", setup.agent.address)
    assert (logged[late.id].levelname, logged[late.id].code) == ("WARNING", "expired")
    state.close()


def test_worker_run_serves_the_metrics_until_it_stops() -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry).observe_step(StepReport(recorded=3), 0.1)
    with ExitStack() as stack:
        url = _serve_metrics(stack, registry, "127.0.0.1", 0)
        scraped = httpx.get(url, timeout=5)
        assert scraped.status_code == 200
        assert "enclava_worker_requests_recorded_total 3.0" in scraped.text
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)


def test_a_gateway_in_the_worker_process_serves_the_worker_metrics_too() -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    text = generate_latest(GatewayMetrics(registry).registry).decode()
    assert "enclava_worker_requests_fulfilled_total" in text
    assert "enclava_gateway_invocations_total" in text or "enclava_gateway_in_flight" in text
