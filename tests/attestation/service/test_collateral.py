"""The service's collateral against a real local fake PCS on 127.0.0.1 (tests/fake_pcs.py):
fetched once, refreshed before nextUpdate, served stale-but-valid while the upstream is down,
refused once expired; the disk cache across restarts; the offline directory mode."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from attestation.pcs import earliest_next_update
from attestation.pki import TrustAnchor
from attestation.service import ServiceKeys, create_app
from attestation.service.collateral import CollateralProvider
from attestation.service.upstreams import OfflineUpstream, PcsUpstream, TrustDomain
from tests.attestation.service.conftest import Clock, b64, client_for, make_sim_worker, settings
from tests.fake_pcs import FakePcs
from tests.samples import GOTDX_V5, NEAR_TDX_V4, SAMPLES, TDX_V4

pytestmark = pytest.mark.anyio

NEXT_UPDATE = earliest_next_update(TDX_V4.collateral)  # 2025-07-19T10:00:35Z
REQUEST = {"quote": b64(TDX_V4.quote)}


def pcs_app(pcs: FakePcs, keys: ServiceKeys, clock: Clock, cache: Path | None) -> FastAPI:
    return create_app(
        settings(
            collateral_mode="pcs",
            offline_dir=None,
            pcs_url=pcs.base_url,
            cache_dir=cache,
            refresh_before_seconds=7 * 86_400,
            refresh_every_seconds=None,
            retry_after_seconds=600,
        ),
        signing=keys,
        clock=clock,
    )


@pytest.fixture
def served(pcs: FakePcs) -> FakePcs:
    pcs.serve(TDX_V4, "tdx", "B0C06F000000", "platform")
    return pcs


async def verify(app: FastAPI) -> tuple[int, dict[str, Any]]:
    async with client_for(app) as client:
        response = await client.post("/v1/verify", json=REQUEST)
    return response.status_code, response.json()


async def test_collateral_is_fetched_once_and_refreshed_before_next_update(
    served: FakePcs, service_keys: ServiceKeys, tmp_path: Path
) -> None:
    clock = Clock(TDX_V4.now)
    app = pcs_app(served, service_keys, clock, tmp_path)
    status, body = await verify(app)
    assert status == 200 and body["accepted"]
    assert body["collateral_source"]["state"] == "fresh"
    assert served.seen == served.expected_paths("tdx", "B0C06F000000", "platform")
    clock.advance(timedelta(days=10))
    status, body = await verify(app)
    assert status == 200 and body["accepted"] and len(served.seen) == 4  # from memory
    clock.now = NEXT_UPDATE - timedelta(days=3)  # inside the 7-day refresh margin
    status, body = await verify(app)
    assert status == 200 and body["accepted"]
    assert body["collateral_source"]["state"] == "stale"
    assert len(served.seen) == 8  # refreshed (in the background, after answering)
    status, body = await verify(app)
    assert len(served.seen) == 8  # one attempt per retry_after, not one per request


async def test_upstream_outage_is_served_from_cache_while_valid_then_refused(
    served: FakePcs, service_keys: ServiceKeys, tmp_path: Path
) -> None:
    clock = Clock(TDX_V4.now)
    app = pcs_app(served, service_keys, clock, tmp_path)
    assert (await verify(app))[0] == 200
    routes = dict(served.routes)
    served.routes.clear()  # the upstream answers 404 to everything
    clock.now = NEXT_UPDATE - timedelta(days=1)
    status, body = await verify(app)
    assert status == 200 and body["accepted"]
    assert body["collateral_source"]["state"] == "stale"
    assert len(served.seen) == 5  # the refresh was tried, and failed
    async with client_for(app) as client:
        health = (await client.get("/healthz")).json()
    assert "HTTP 404" in health["collateral"][0]["last_error"]
    clock.now = NEXT_UPDATE + timedelta(seconds=1)
    status, body = await verify(app)
    assert status == 503
    assert body["error"]["code"] == "collateral_expired"
    assert "expired at 2025-07-19T10:00:35+00:00" in body["error"]["message"]
    served.routes.update(routes)  # back up, but it only has the same (expired) collateral
    clock.advance(timedelta(hours=1))
    status, body = await verify(app)
    assert status == 503 and body["error"]["code"] == "collateral_expired"
    assert "has nothing newer" in body["error"]["message"]


async def test_upstream_down_with_nothing_cached_is_unavailable(
    pcs: FakePcs, service_keys: ServiceKeys, tmp_path: Path
) -> None:
    clock = Clock(TDX_V4.now)
    app = pcs_app(pcs, service_keys, clock, tmp_path)
    status, body = await verify(app)
    assert status == 503 and body["error"]["code"] == "collateral_unavailable"
    assert "HTTP 404" in body["error"]["message"]
    seen = len(pcs.seen)
    status, body = await verify(app)
    assert status == 503 and len(pcs.seen) == seen  # not retried before retry_after
    assert "retried after" in body["error"]["message"]


async def test_forged_pck_chains_make_no_upstream_requests(
    pcs: FakePcs, service_keys: ServiceKeys, tmp_path: Path
) -> None:
    """A quote whose PCK chain does not lead to Intel's root (here: a simulator's) could name
    any FMSPC: the service must not let it drive requests to Intel PCS."""
    worker = make_sim_worker(TDX_V4.now)
    app = pcs_app(pcs, service_keys, Clock(TDX_V4.now), tmp_path)
    async with client_for(app) as client:
        response = await client.post("/v1/verify", json={"quote": b64(worker.quote)})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "untrusted_pck_chain"
    assert pcs.seen == []


async def test_disk_cache_survives_a_restart_while_the_upstream_is_down(
    served: FakePcs, service_keys: ServiceKeys, tmp_path: Path
) -> None:
    clock = Clock(TDX_V4.now)
    assert (await verify(pcs_app(served, service_keys, clock, tmp_path)))[0] == 200
    served.routes.clear()
    restarted = pcs_app(served, service_keys, clock, tmp_path)
    status, body = await verify(restarted)
    assert status == 200 and body["accepted"] and len(served.seen) == 4


async def test_metrics_show_stale_collateral(
    served: FakePcs, service_keys: ServiceKeys, tmp_path: Path
) -> None:
    clock = Clock(TDX_V4.now)
    app = pcs_app(served, service_keys, clock, tmp_path)
    await verify(app)
    served.routes.clear()
    clock.now = NEXT_UPDATE - timedelta(hours=1)
    async with client_for(app) as client:
        text = (await client.get("/metrics")).text
    stale = [line for line in text.splitlines() if 'state="stale"' in line]
    assert stale and stale[0].endswith(" 1.0")
    expiry = next(
        line for line in text.splitlines() if line.startswith("enclava_attest_collateral_expiry")
    )
    assert float(expiry.rsplit(" ", 1)[1]) == pytest.approx(3600)


def test_background_refresh_renews_due_entries(served: FakePcs, tmp_path: Path) -> None:
    from attestation.pcs import CollateralCache, PcsClient
    from attestation.quote import parse_quote

    upstream = PcsUpstream(PcsClient(served.base_url), CollateralCache(tmp_path))
    provider = CollateralProvider(
        [TrustDomain(TrustAnchor.intel(), upstream)],
        refresh_before=timedelta(days=7),
        refresh_every=None,
    )
    route = provider.route(parse_quote(TDX_V4.quote))
    assert provider.obtain(route, TDX_V4.now).state == "fresh"
    assert provider.refresh_due(TDX_V4.now) == 0
    assert provider.refresh_due(NEXT_UPDATE - timedelta(days=2)) == 1
    assert len(served.seen) == 8
    provider.close()


def test_refresh_every_renews_collateral_a_day_after_its_issue() -> None:
    upstream = OfflineUpstream(SAMPLES)
    provider = CollateralProvider(
        [TrustDomain(TrustAnchor.intel(), upstream)], refresh_every=timedelta(days=1)
    )
    from attestation.quote import parse_quote

    route = provider.route(parse_quote(TDX_V4.quote))
    found = provider.obtain(route, TDX_V4.now)  # issued 2025-06-19, a day before
    assert found.state == "stale" and found.refresh  # the first caller refreshes it
    again = provider.lookup(route, TDX_V4.now)
    assert again.state == "stale" and not again.refresh


async def test_offline_mode_serves_bundles_by_fmspc(service_keys: ServiceKeys) -> None:
    for sample in (TDX_V4, NEAR_TDX_V4, GOTDX_V5):
        app = create_app(settings(), signing=service_keys, clock=Clock(sample.now))
        async with client_for(app) as client:
            response = await client.post("/v1/verify", json={"quote": b64(sample.quote)})
        body = response.json()
        assert response.status_code == 200 and body["accepted"], body
        assert body["collateral_source"]["upstream"] == f"offline {SAMPLES}"


async def test_offline_mode_without_a_bundle_is_unavailable(
    service_keys: ServiceKeys, tmp_path: Path
) -> None:
    (tmp_path / "junk.json").write_text("{}")
    (tmp_path / "tdx.json").write_text(GOTDX_V5.collateral_text)
    app = create_app(settings(offline_dir=tmp_path), signing=service_keys, clock=Clock(TDX_V4.now))
    status, body = await verify(app)
    assert status == 503 and body["error"]["code"] == "collateral_unavailable"
    assert "no collateral bundle" in body["error"]["message"]
