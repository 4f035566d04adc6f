"""TCB level matching and status merging (Intel's rules, as in Intel QVL and dcap-qvl).

Pure functions over the typed TCB info / QE identity (`attestation.collateral`) and the values
certified in the PCK certificate (`attestation.pck`). A failed match raises `TcbError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from attestation.errors import TcbError

if TYPE_CHECKING:
    from attestation.collateral import ModuleTcbLevel, TcbInfo, TdxModuleIdentity
    from attestation.pck import PckExtensions
    from attestation.report import TdReport10

__all__ = ["TcbMatch", "TcbStatus", "match_isvsvn", "match_platform", "match_tdx_module", "merge"]

TCB_COMPONENTS = 16


class TcbStatus(StrEnum):
    """Intel TCB statuses, in increasing severity."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {status: rank for rank, status in enumerate(TcbStatus)}
_CONFIGURATION = {TcbStatus.CONFIGURATION_NEEDED, TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED}


@dataclass(frozen=True, slots=True)
class TcbMatch:
    """The status a TCB level gave, and the advisories that come with it."""

    status: TcbStatus
    advisory_ids: tuple[str, ...] = ()
    tcb_date: str = ""


def merge(first: TcbMatch, second: TcbMatch) -> TcbMatch:
    """The most severe of two statuses, advisories united in order. An out-of-date component
    on a platform that also needs configuration is `OutOfDateConfigurationNeeded` (Intel QVL's
    status convergence), which is more severe than either."""
    statuses = {first.status, second.status}
    if TcbStatus.OUT_OF_DATE in statuses and statuses & _CONFIGURATION:
        status = TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED
    else:
        status = max(statuses, key=lambda s: s.severity)
    advisories = tuple(dict.fromkeys(first.advisory_ids + second.advisory_ids))
    return TcbMatch(status, advisories, first.tcb_date)


def match_platform(tcb_info: TcbInfo, pck: PckExtensions, td_report: TdReport10 | None) -> TcbMatch:
    """The first (highest) TCB level the platform meets: every SGX component and PCESVN from the
    PCK certificate, and for TDX the TEE_TCB_SVN components, at least the level's."""
    if len(pck.tcb_components) != TCB_COMPONENTS:
        raise TcbError("tcb.platform", "PCK certificate does not carry 16 TCB components")
    tee_tcb_svn = td_report.tee_tcb_svn if td_report is not None else b""
    # With a TDX module version (TEE_TCB_SVN[1]) > 0, bytes 0-1 are the module's SVN and
    # version, judged by the TDX module identity's own levels, not here (Intel TCB info v3).
    tdx_from = 2 if len(tee_tcb_svn) > 1 and tee_tcb_svn[1] > 0 else 0
    for level in tcb_info.tcb_levels:
        if len(level.sgx_components) != TCB_COMPONENTS:
            raise TcbError(
                "tcb.platform",
                f"TCB level {level.tcb_date} has {len(level.sgx_components)} SGX components, "
                f"expected {TCB_COMPONENTS}",
            )
        if td_report is not None and (
            level.tdx_components is None or len(level.tdx_components) != TCB_COMPONENTS
        ):
            raise TcbError(
                "tcb.platform", f"TCB level {level.tcb_date} does not have 16 TDX components"
            )
        if pck.pce_svn < level.pce_svn:
            continue
        if not _meets(pck.tcb_components, level.sgx_components):
            continue
        if (
            td_report is not None
            and level.tdx_components is not None
            and not _meets(tee_tcb_svn[tdx_from:], level.tdx_components[tdx_from:])
        ):
            continue
        return TcbMatch(level.status, level.advisory_ids, level.tcb_date)
    raise TcbError(
        "tcb.platform",
        f"No matching TCB level found: platform (PCESVN {pck.pce_svn}, CPUSVN "
        f"{pck.cpu_svn.hex()}{', TEE_TCB_SVN ' + tee_tcb_svn.hex() if tee_tcb_svn else ''}) "
        "is below every level in the TCB info",
    )


def _meets(have: bytes | tuple[int, ...], need: tuple[int, ...]) -> bool:
    """Every component at least the level's (both have the same number of components here)."""
    return all(h >= n for h, n in zip(have, need, strict=True))


def match_tdx_module(tcb_info: TcbInfo, td_report: TdReport10) -> TcbMatch | None:
    """Check the TDX module's signer and attributes (MRSIGNERSEAM, SEAMATTRIBUTES) against the
    TCB info; when a `tdxModuleIdentities` entry `TDX_<version>` applies, also return the
    module's TCB status from its ISVSVN (TEE_TCB_SVN[0]; the version is TEE_TCB_SVN[1])."""
    if tcb_info.tdx_module is None:
        raise TcbError("tcb.tdx_module", "TDX TCB info has no tdxModule")
    isv_svn, version = td_report.tee_tcb_svn[0], td_report.tee_tcb_svn[1]
    expected: TdxModuleIdentity = tcb_info.tdx_module
    if version > 0 and tcb_info.tdx_module_identities:
        wanted = f"TDX_{version:02X}"
        found = [m for m in tcb_info.tdx_module_identities if m.id.upper() == wanted]
        if not found:
            raise TcbError("tcb.tdx_module", f"No TDX module identity {wanted} in the TCB info")
        expected = found[0]
    if td_report.mr_signer_seam != expected.mrsigner:
        raise TcbError(
            "tcb.tdx_module",
            f"MRSIGNERSEAM {td_report.mr_signer_seam.hex()} is not the module signer "
            f"{expected.mrsigner.hex()}",
        )
    mask = int.from_bytes(expected.attributes_mask, "little")
    actual = int.from_bytes(td_report.seam_attributes, "little")
    wanted_attrs = int.from_bytes(expected.attributes, "little")
    if actual & mask != wanted_attrs & mask or actual & ~mask:
        raise TcbError("tcb.tdx_module", "SEAMATTRIBUTES do not match the TDX module identity")
    if not expected.tcb_levels:
        return None
    return match_isvsvn(expected.tcb_levels, isv_svn, "tcb.tdx_module", "TDX module")


def match_isvsvn(
    levels: tuple[ModuleTcbLevel, ...], isv_svn: int, check: str, what: str
) -> TcbMatch:
    """The first level whose ISVSVN the component meets (QE identity or TDX module levels)."""
    for level in levels:
        if isv_svn >= level.isv_svn:
            return TcbMatch(level.status, level.advisory_ids, level.tcb_date)
    lowest = min((lv.isv_svn for lv in levels), default=None)
    raise TcbError(check, f"{what} ISVSVN {isv_svn} is below every TCB level (lowest {lowest})")
