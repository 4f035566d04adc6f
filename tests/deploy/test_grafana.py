"""The Grafana dashboard queries only metrics the services really export."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from attestation.service.metrics import ServiceMetrics
from enclave.gateway.metrics import GatewayMetrics
from enclave.worker.metrics import WorkerMetrics
from tests.deploy.files import ROOT

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


class _NoCollateral:
    def status(self, now: datetime) -> list[Any]:
        return []


def _series(registry: CollectorRegistry) -> set[str]:
    return {m.name + s for m in registry.collect() for s in SUFFIXES[m.type]}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    service = ServiceMetrics(_NoCollateral(), lambda: datetime.now(UTC))
    workers = CollectorRegistry()
    WorkerMetrics(workers)
    return _series(service.registry) | _series(GatewayMetrics().registry) | _series(workers)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((ROOT / "deploy" / "grafana" / "enclava.json").read_text())


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_every_queried_metric_is_exported(dashboard: dict[str, Any], exported: set[str]) -> None:
    used = {n for e in _exprs(dashboard) for n in re.findall(r"\benclava_\w+", e)}
    assert used, "the dashboard queries no enclava metric"
    assert used <= exported, used - exported


def test_every_exported_metric_family_is_on_the_dashboard(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    text = " ".join(_exprs(dashboard))
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported}
    assert all(f in text for f in families), [f for f in families if f not in text]


def test_panels_have_unique_ids_and_every_graph_a_query(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
