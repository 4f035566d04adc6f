"""Policy decisions over verified real quotes (policy is a pure function of a VerifiedQuote)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from attestation import (
    Policy,
    PolicyFormatError,
    TcbStatus,
    TrustAnchor,
    VerifiedQuote,
    verify_quote,
)
from attestation.report import TdAttributes, TdReport10
from tests.samples import GOTDX_V5, SGX_V3, TDX_V4, Sample

INTEL = TrustAnchor.intel()


def verified(sample: Sample) -> VerifiedQuote:
    return verify_quote(sample.quote, sample.collateral, now=sample.now, trust_anchor=INTEL)


def with_report(v: VerifiedQuote, **changes: object) -> VerifiedQuote:
    quote = dataclasses.replace(v.quote, report=dataclasses.replace(v.quote.report, **changes))
    return dataclasses.replace(v, quote=quote)


def test_default_policy_accepts_up_to_date_production_td() -> None:
    decision = Policy().evaluate(verified(TDX_V4), now=TDX_V4.now)
    assert decision.accepted and decision.reasons == () and decision.relaxations == ()


def test_default_policy_rejects_configuration_needed_status() -> None:
    decision = Policy().evaluate(verified(SGX_V3), now=SGX_V3.now)
    assert not decision.accepted
    assert decision.reasons[0].startswith("tcb_status: ConfigurationAndSWHardeningNeeded")


def test_rejected_advisory_rejects_even_an_accepted_status() -> None:
    policy = Policy(
        accepted_tcb_statuses=frozenset(TcbStatus),
        rejected_advisories=frozenset({"INTEL-SA-00615"}),
    )
    decision = policy.evaluate(verified(SGX_V3), now=SGX_V3.now)
    assert decision.reasons == ("advisories: rejected advisory INTEL-SA-00615",)


def test_empty_allow_list_denies_every_value() -> None:
    decision = Policy(mrtd=frozenset()).evaluate(verified(TDX_V4), now=TDX_V4.now)
    assert not decision.accepted
    assert "empty allow-list denies" in decision.reasons[0]


def test_pinned_measurements_accept_the_quote_that_has_them_only() -> None:
    v = verified(TDX_V4)
    report = v.quote.report
    assert isinstance(report, TdReport10)
    pinned = Policy(mrtd=frozenset({report.mr_td}), rtmr3=frozenset({report.rtmr3}))
    assert pinned.evaluate(v, now=TDX_V4.now).accepted
    other = Policy(mrtd=frozenset({bytes(48)}))
    assert other.evaluate(v, now=TDX_V4.now).reasons[0].startswith("mrtd: ")


def test_sgx_allow_list_on_a_td_quote_denies() -> None:
    decision = Policy(mrenclave=frozenset({bytes(32)})).evaluate(verified(TDX_V4), now=TDX_V4.now)
    assert decision.reasons == (
        "mrenclave: pinned by the policy, but a TDX quote has no mrenclave",
    )


def test_report_data_must_match_exactly() -> None:
    v = verified(TDX_V4)
    assert Policy(report_data=v.quote.report.report_data).evaluate(v, now=TDX_V4.now).accepted
    decision = Policy(report_data=bytes(64)).evaluate(v, now=TDX_V4.now)
    assert decision.reasons[0].startswith("report_data: ")


def test_debug_td_is_rejected_unless_explicitly_relaxed() -> None:
    debug = with_report(
        verified(TDX_V4), td_attributes=TdAttributes(bytes.fromhex("0100001000000000"))
    )
    assert Policy().evaluate(debug, now=TDX_V4.now).reasons[0].startswith("debug: ")
    relaxed = Policy(allow_debug=True).evaluate(debug, now=TDX_V4.now)
    assert relaxed.accepted and relaxed.relaxations[0].startswith("allow_debug")


def test_td_without_sept_ve_disable_or_with_reserved_bits_is_rejected() -> None:
    v = verified(TDX_V4)
    no_sept = with_report(v, td_attributes=TdAttributes(bytes(8)))
    assert Policy().evaluate(no_sept, now=TDX_V4.now).reasons == (
        "td_attributes: SEPT_VE_DISABLE is not set",
    )
    reserved = with_report(v, td_attributes=TdAttributes(bytes.fromhex("0001001000000000")))
    assert Policy().evaluate(reserved, now=TDX_V4.now).reasons == (
        "td_attributes: reserved TDATTRIBUTES bits are set",
    )


def test_allowed_mrservicetd_list_accepts_only_listed_values() -> None:
    v = with_report(verified(GOTDX_V5), mr_service_td=b"\x01" * 48)
    assert Policy().evaluate(v, now=GOTDX_V5.now).reasons[0].startswith("mrservicetd: Invalid")
    assert (
        Policy(allowed_mrservicetd=frozenset({b"\x01" * 48})).evaluate(v, now=GOTDX_V5.now).accepted
    )


def test_simulated_anchor_is_rejected_unless_allowed() -> None:
    v = dataclasses.replace(verified(TDX_V4), simulated=True, trust_anchor="simulator root")
    assert Policy().evaluate(v, now=TDX_V4.now).reasons[0].startswith("trust_anchor: ")
    allowed = Policy(allow_simulated=True).evaluate(v, now=TDX_V4.now)
    assert allowed.accepted and any("allow_simulated" in r for r in allowed.relaxations)


def test_max_collateral_age() -> None:
    v = verified(TDX_V4)
    assert Policy(max_collateral_age=timedelta(days=2)).evaluate(v, now=TDX_V4.now).accepted
    decision = Policy(max_collateral_age=timedelta(hours=1)).evaluate(v, now=TDX_V4.now)
    assert decision.reasons[0].startswith("collateral_age: ")


def test_loads_toml_and_json_policy_files(tmp_path: Path) -> None:
    mrtd = "ab" * 48
    toml = tmp_path / "p.toml"
    toml.write_text(
        f'accepted_tcb_statuses = ["UpToDate"]\nmrtd = ["0x{mrtd}"]\nallow_debug = true\n'
    )
    from_toml = Policy.from_file(toml)
    assert from_toml.mrtd == frozenset({bytes.fromhex(mrtd)}) and from_toml.allow_debug
    as_json = tmp_path / "p.json"
    as_json.write_text(
        json.dumps({"accepted_tcb_statuses": ["UpToDate"], "mrtd": [mrtd], "allow_debug": True})
    )
    assert Policy.from_file(as_json) == from_toml


@pytest.mark.parametrize(
    "content",
    [
        '{"mrtd": ["abcd"]}',
        '{"accepted_tcb_statuses": ["Great"]}',
        '{"unknown_rule": true}',
        '{"min_isvsvn": -1}',
        "not json",
        "[1, 2]",
    ],
)
def test_malformed_policy_files_raise_policy_format_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(PolicyFormatError):
        Policy.from_file(path)


def test_missing_policy_file_is_a_policy_format_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFormatError, match="cannot read"):
        Policy.from_file(tmp_path / "absent.toml")
