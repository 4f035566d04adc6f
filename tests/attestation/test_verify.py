"""End-to-end verification of the real samples at the README's timestamps, and caching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import attestation.collateral_trust as collateral_trust_module
import attestation.verify as verify_module
from attestation import (
    CHECKS,
    CollateralExpiredError,
    Policy,
    QuoteVerifier,
    TcbError,
    TrustAnchor,
    verify_quote,
)
from tests.samples import ALIBABA_V5, OUTDATED_V5, SGX_V3, TAPPD_V4, TDX_V4, VERIFYING, Sample

INTEL = TrustAnchor.intel()


@pytest.mark.parametrize("sample", VERIFYING, ids=lambda s: s.quote_file)
def test_verifying_samples_give_readme_status_and_advisories(sample: Sample) -> None:
    verified = verify_quote(sample.quote, sample.collateral, now=sample.now, trust_anchor=INTEL)
    assert verified.tcb_status == sample.status
    assert verified.advisory_ids == sample.advisory_ids
    sgx = sample is SGX_V3
    expected = [name for name, _ in CHECKS if not (sgx and name == "tcb.tdx_module")]
    assert list(verified.checks) == expected and verified.tee == ("sgx" if sgx else "tdx")
    assert not verified.simulated and verified.trust_anchor == "Intel SGX Root CA"


@pytest.mark.parametrize("sample", (OUTDATED_V5, TAPPD_V4), ids=lambda s: s.quote_file)
def test_platform_below_every_tcb_level_is_rejected(sample: Sample) -> None:
    with pytest.raises(TcbError) as exc:
        verify_quote(sample.quote, sample.collateral, now=sample.now, trust_anchor=INTEL)
    assert exc.value.check == "tcb.platform"
    assert "No matching TCB level found" in exc.value.message


def test_quote_with_a_bound_service_td_verifies_but_default_policy_rejects_it() -> None:
    sample = ALIBABA_V5
    verified = verify_quote(sample.quote, sample.collateral, now=sample.now, trust_anchor=INTEL)
    decision = Policy().evaluate(verified, now=sample.now)
    assert not decision.accepted
    assert any(r.startswith("mrservicetd: Invalid MR service TD") for r in decision.reasons)
    relaxed = Policy(
        allow_any_mrservicetd=True, accepted_tcb_statuses=frozenset({verified.tcb_status})
    )
    assert relaxed.evaluate(verified, now=sample.now).accepted


def test_verified_quote_reports_fmspc_measurements_and_collateral() -> None:
    verified = verify_quote(TDX_V4.quote, TDX_V4.collateral, now=TDX_V4.now, trust_anchor=INTEL)
    assert verified.fmspc == "B0C06F000000" and verified.tee == "tdx"
    assert set(verified.measurements) >= {"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "report_data"}
    assert verified.collateral.tcb_evaluation_data_number == 17
    assert verified.collateral.tcb_info_issue_date == datetime(2025, 6, 19, 10, 16, 3, tzinfo=UTC)


@pytest.mark.parametrize("sample", VERIFYING, ids=lambda s: s.quote_file)
def test_every_sample_fails_at_the_real_clock_because_its_crls_expired(sample: Sample) -> None:
    late_2026 = datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(CollateralExpiredError) as exc:
        verify_quote(sample.quote, sample.collateral, now=late_2026, trust_anchor=INTEL)
    assert exc.value.check == "collateral.crls" and "CrlExpired" in exc.value.message


@pytest.mark.parametrize("sample", VERIFYING, ids=lambda s: s.quote_file)
def test_collateral_outside_its_window_is_rejected(sample: Sample) -> None:
    early = sample.now - timedelta(days=31)
    late = sample.now + timedelta(days=31)
    for now in (early, late):
        with pytest.raises(CollateralExpiredError):
            verify_quote(sample.quote, sample.collateral, now=now, trust_anchor=INTEL)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_quote(TDX_V4.quote, TDX_V4.collateral, now=datetime(2025, 6, 20), trust_anchor=INTEL)


def test_warm_verification_equals_cold_and_skips_chain_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = QuoteVerifier(INTEL)
    for sample in VERIFYING:
        cold = verify_quote(sample.quote, sample.collateral, now=sample.now, trust_anchor=INTEL)
        assert verifier.verify(sample.quote, sample.collateral, now=sample.now) == cold

    def no_chain_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("warm verification redid certificate-chain work")

    monkeypatch.setattr(verify_module, "ChainValidator", no_chain_work)
    monkeypatch.setattr(collateral_trust_module, "ChainValidator", no_chain_work)
    for sample in VERIFYING:
        warm = verifier.verify(sample.quote, sample.collateral, now=sample.now + timedelta(hours=1))
        assert warm.tcb_status == sample.status


def test_warm_verifier_rechecks_when_now_leaves_the_cached_window() -> None:
    verifier = QuoteVerifier(INTEL)
    verifier.verify(TDX_V4.quote, TDX_V4.collateral, now=TDX_V4.now)
    with pytest.raises(CollateralExpiredError) as warm:
        verifier.verify(TDX_V4.quote, TDX_V4.collateral, now=TDX_V4.now + timedelta(days=60))
    with pytest.raises(CollateralExpiredError) as cold:
        verify_quote(
            TDX_V4.quote, TDX_V4.collateral, now=TDX_V4.now + timedelta(days=60), trust_anchor=INTEL
        )
    assert warm.value.message == cold.value.message


def test_collateral_loads_and_round_trips_through_json() -> None:
    collateral = TDX_V4.collateral
    again = type(collateral).from_json(collateral.to_json())
    assert again == collateral and again.digest == collateral.digest
