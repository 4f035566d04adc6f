"""The simulated TDX: its quotes go through the real DCAP verifier, rooted in its own CA."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from attestation import (
    BindingError,
    CertificateError,
    CollateralExpiredError,
    Policy,
    TrustAnchor,
    parse_quote,
    verify_quote,
)
from attestation.binding import check_worker_report_data
from attestation.errors import EventLogError
from attestation.eventlog import RuntimeEvent, agent_event, replay
from attestation.quote import CertificationDataType
from attestation.report import BodyType, TdReport10
from enclave.errors import TeeUnavailableError
from enclave.keys import EnclaveKeys
from enclave.tee.base import TeeBackend
from enclave.tee.sim import SimulatedTdx, load_trust_anchor

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim(tmp_path: Path) -> SimulatedTdx:
    return SimulatedTdx(tmp_path / "machine", now=NOW)


def test_simulator_is_a_tee_backend(sim: SimulatedTdx) -> None:
    assert isinstance(sim, TeeBackend)
    assert sim.kind == "simulated"


def test_quote_is_a_dcap_v4_tdx_quote_with_nested_pck_chain(sim: SimulatedTdx) -> None:
    quote = parse_quote(sim.quote(b"\x42" * 64))
    assert (quote.header.version, quote.body_type) == (4, BodyType.TD_REPORT10)
    sig = quote.signature_data
    assert sig.certification_data.type == CertificationDataType.QE_REPORT
    assert sig.qe_report_certification is not None
    assert sig.qe_report_certification.certification_data.type == 5
    assert quote.report.report_data == b"\x42" * 64


def test_round_trip_with_agent_events_and_replayed_event_log(sim: SimulatedTdx) -> None:
    keys = EnclaveKeys.generate()
    nonce = secrets.token_bytes(32)
    for name in ("echo", "embed"):
        sim.extend_rtmr(agent_event(name, "1.0.0", secrets.token_bytes(48)))
    raw = sim.quote(keys.report_data(nonce))
    verified = verify_quote(raw, sim.collateral(now=NOW), now=NOW, trust_anchor=sim.trust_anchor)
    assert verified.simulated and verified.tcb_status == "UpToDate"
    report = verified.quote.report
    assert isinstance(report, TdReport10)
    assert replay(sim.event_log())[3] == report.rtmr3 != bytes(48)
    check_worker_report_data(report.report_data, keys.address_bytes, keys.x25519_public, nonce)


def test_tampered_event_no_longer_replays_to_the_quoted_rtmr3(sim: SimulatedTdx) -> None:
    sim.extend_rtmr(agent_event("echo", "1.0.0", bytes(48)))
    report = parse_quote(sim.quote(bytes(64))).report
    assert isinstance(report, TdReport10)
    forged = agent_event("echo", "1.0.1", bytes(48))
    assert replay([forged])[3] != report.rtmr3
    (event,) = sim.event_log()
    with pytest.raises(EventLogError, match="does not match its name and payload"):
        replay([dataclasses.replace(event, digest=bytes(48))])


def test_stale_nonce_is_rejected(sim: SimulatedTdx) -> None:
    keys = EnclaveKeys.generate()
    old, fresh = secrets.token_bytes(32), secrets.token_bytes(32)
    report = parse_quote(sim.quote(keys.report_data(old))).report
    with pytest.raises(BindingError):
        check_worker_report_data(report.report_data, keys.address_bytes, keys.x25519_public, fresh)


def test_quote_from_another_simulator_is_rejected(sim: SimulatedTdx, tmp_path: Path) -> None:
    other = SimulatedTdx(tmp_path / "other", now=NOW)
    raw = other.quote(bytes(64))
    with pytest.raises(CertificateError) as exc:
        verify_quote(raw, sim.collateral(now=NOW), now=NOW, trust_anchor=sim.trust_anchor)
    assert exc.value.check == "pck.chain"


def test_simulated_quote_under_intel_root_is_rejected_naming_the_root(sim: SimulatedTdx) -> None:
    with pytest.raises(CertificateError) as exc:
        verify_quote(
            sim.quote(bytes(64)), sim.collateral(now=NOW), now=NOW, trust_anchor=TrustAnchor.intel()
        )
    assert exc.value.check == "collateral.crls"
    assert "chains to another root" in exc.value.reason


def test_default_policy_rejects_simulated_tee_unless_allowed(sim: SimulatedTdx) -> None:
    verified = verify_quote(
        sim.quote(bytes(64)), sim.collateral(now=NOW), now=NOW, trust_anchor=sim.trust_anchor
    )
    assert Policy().evaluate(verified, now=NOW).reasons[0].startswith("trust_anchor: ")
    assert Policy(allow_simulated=True).evaluate(verified, now=NOW).accepted


def test_collateral_has_a_realistic_validity_window(sim: SimulatedTdx) -> None:
    collateral = sim.collateral(now=NOW)
    raw = sim.quote(bytes(64))
    anchor = sim.trust_anchor
    verify_quote(raw, collateral, now=NOW + timedelta(days=29), trust_anchor=anchor)
    for outside in (NOW - timedelta(seconds=1), NOW + timedelta(days=31)):
        with pytest.raises(CollateralExpiredError):
            verify_quote(raw, collateral, now=outside, trust_anchor=anchor)


def test_restarted_simulator_is_the_same_machine(tmp_path: Path) -> None:
    first = SimulatedTdx(tmp_path / "m", now=NOW)
    first.extend_rtmr(RuntimeEvent.create("boot", b"x"))
    again = SimulatedTdx(tmp_path / "m", now=NOW + timedelta(days=3))
    assert again.trust_anchor.fingerprint == first.trust_anchor.fingerprint
    assert load_trust_anchor(tmp_path / "m").fingerprint == first.trust_anchor.fingerprint
    assert again.rtmrs[3] == bytes(48)  # a restart is a reboot: RTMR3 starts over
    assert again.event_log() == ()
    raw = again.quote(bytes(64))
    verify_quote(raw, first.collateral(now=NOW), now=NOW, trust_anchor=first.trust_anchor)


def test_trust_anchor_of_a_missing_machine_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TeeUnavailableError):
        load_trust_anchor(tmp_path / "nothing-here")


def test_report_data_must_be_64_bytes(sim: SimulatedTdx) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        sim.quote(b"short")


def test_same_image_measures_the_same_and_another_does_not(tmp_path: Path) -> None:
    a = SimulatedTdx(tmp_path / "a", now=NOW)
    b = SimulatedTdx(tmp_path / "b", now=NOW)
    c = SimulatedTdx(tmp_path / "c", image="another-image", now=NOW)
    assert a.mr_td == b.mr_td != c.mr_td
    assert a.rtmrs[:3] == b.rtmrs[:3] != c.rtmrs[:3]
