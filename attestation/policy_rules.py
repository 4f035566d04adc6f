"""The quote rules of `attestation.policy.Policy`: each returns None when it passes, else a
reason "<rule>: <why>". `RULES` runs them in a fixed order over a `PolicySubject`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from attestation.report import SgxReportBody, TdReport10, TdReport15

if TYPE_CHECKING:
    from attestation.policy import Policy, PolicySubject

__all__ = ["RULES"]

_ZERO48 = bytes(48)


def _tcb_status(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    if v.tcb_status in p.accepted_tcb_statuses:
        return None
    accepted = ", ".join(sorted(p.accepted_tcb_statuses)) or "none"
    return f"tcb_status: {v.tcb_status} is not accepted (accepted: {accepted})"


def _advisories(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    hit = sorted(a for a in v.advisory_ids if a.upper() in p.rejected_advisories)
    return f"advisories: rejected advisory {', '.join(hit)}" if hit else None


def _simulated(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    if not v.simulated or p.allow_simulated:
        return None
    return (
        f"trust_anchor: quote is rooted in {v.trust_anchor!r}, not Intel (allow_simulated is off)"
    )


def _debug(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    report = v.report
    debug = (
        report.attributes.debug if isinstance(report, SgxReportBody) else report.td_attributes.debug
    )
    if debug and not p.allow_debug:
        return "debug: the TEE runs in debug mode (its memory can be read by the host)"
    return None


def _td_attributes(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    report = v.report
    if not isinstance(report, TdReport10):
        return None
    if report.td_attributes.reserved_bits_set:
        return "td_attributes: reserved TDATTRIBUTES bits are set"
    if p.require_sept_ve_disable and not report.td_attributes.sept_ve_disable:
        return "td_attributes: SEPT_VE_DISABLE is not set"
    return None


def _mrservicetd(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    report = v.report
    if not isinstance(report, TdReport15) or p.allow_any_mrservicetd:
        return None
    value = report.mr_service_td
    if p.allowed_mrservicetd is not None:
        if value in p.allowed_mrservicetd:
            return None
        return f"mrservicetd: {value.hex()} is not in the allow-list"
    if value == _ZERO48:
        return None
    return f"mrservicetd: Invalid MR service TD: a service TD is bound ({value.hex()})"


def _allow_list(name: str, get: Callable[[SgxReportBody | TdReport10], bytes | None]) -> Any:
    def rule(p: Policy, v: PolicySubject, _: datetime) -> str | None:
        allowed: frozenset[bytes] | None = getattr(p, name)
        if allowed is None:
            return None
        value = get(v.report)
        if value is None:
            return f"{name}: pinned by the policy, but a {v.tee.upper()} quote has no {name}"
        if not allowed:
            return f"{name}: the allow-list is empty (an empty allow-list denies every value)"
        return None if value in allowed else f"{name}: {value.hex()} is not in the allow-list"

    return rule


def _td(attr: str) -> Callable[[SgxReportBody | TdReport10], bytes | None]:
    return lambda r: getattr(r, attr) if isinstance(r, TdReport10) else None


def _sgx(attr: str) -> Callable[[SgxReportBody | TdReport10], bytes | None]:
    return lambda r: getattr(r, attr) if isinstance(r, SgxReportBody) else None


def _isv(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    if p.isvprodid is None and p.min_isvsvn is None:
        return None
    report = v.report
    if not isinstance(report, SgxReportBody):
        return "isv: ISVPRODID/ISVSVN are pinned by the policy, but a TDX quote has none"
    if p.isvprodid is not None and report.isv_prod_id not in p.isvprodid:
        return f"isvprodid: {report.isv_prod_id} is not in the allow-list"
    if p.min_isvsvn is not None and report.isv_svn < p.min_isvsvn:
        return f"isvsvn: {report.isv_svn} is below the minimum {p.min_isvsvn}"
    return None


def _report_data(p: Policy, v: PolicySubject, _: datetime) -> str | None:
    if p.report_data is None or v.report.report_data == p.report_data:
        return None
    return "report_data: REPORTDATA is not the expected value (the quote is not bound to it)"


def _collateral_age(p: Policy, v: PolicySubject, now: datetime) -> str | None:
    if p.max_collateral_age is None:
        return None
    if v.collateral_issued is None:
        return "collateral_age: the collateral's issue date is not known (only its hashes are)"
    age = now - v.collateral_issued
    if age <= p.max_collateral_age:
        return None
    return f"collateral_age: collateral issued {age} ago, more than {p.max_collateral_age}"


RULES: tuple[Callable[[Policy, PolicySubject, datetime], str | None], ...] = (
    _simulated,
    _tcb_status,
    _advisories,
    _debug,
    _td_attributes,
    _mrservicetd,
    _allow_list("mrtd", _td("mr_td")),
    _allow_list("rtmr0", _td("rtmr0")),
    _allow_list("rtmr1", _td("rtmr1")),
    _allow_list("rtmr2", _td("rtmr2")),
    _allow_list("rtmr3", _td("rtmr3")),
    _allow_list("mrenclave", _sgx("mr_enclave")),
    _allow_list("mrsigner", _sgx("mr_signer")),
    _isv,
    _report_data,
    _collateral_age,
)
