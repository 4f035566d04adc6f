"""What a successful verification returns, and the list of checks it ran.

Verification runs the checks of `CHECKS` in this order (`attestation.verify`); a failure names
the check it failed, so those before it passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from attestation import tcb
from attestation.pck import PckExtensions
from attestation.quote import Quote
from attestation.report import SgxReportBody, TdReport10, TdReport15

__all__ = ["CHECKS", "CollateralSummary", "VerifiedQuote", "checks_for", "report_measurements"]

CHECKS: tuple[tuple[str, str], ...] = (
    ("quote.header", "version, TEE type, ECDSA-P256 attestation key, Intel QE vendor ID"),
    ("collateral.crls", "root CA CRL and PCK CRL inside their validity windows"),
    ("tcb_info.window", "TCB info issueDate <= now <= nextUpdate"),
    ("tcb_info.chain", "TCB signing certificate chains to the pinned root, not revoked"),
    ("tcb_info.signature", "TCB info signature over the received bytes"),
    ("qe_identity.window", "QE identity issueDate <= now <= nextUpdate"),
    ("qe_identity.chain", "QE identity signing certificate chains to the pinned root"),
    ("qe_identity.signature", "QE identity signature over the received bytes"),
    ("tcb_info.type", "TCB info id and version fit the quote's TEE"),
    ("qe_identity.type", "QE identity id and version fit the quote's TEE"),
    ("pck.chain", "PCK certificate -> PCK CA -> pinned root, none revoked"),
    ("pck.extensions", "Intel SGX extensions of the PCK certificate"),
    ("qe_report.signature", "QE report signed by the PCK key"),
    ("qe_report.binding", "QE report data = SHA-256(attestation key || QE auth data)"),
    ("qe_identity.match", "QE MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES match QE identity"),
    ("quote.signature", "quote header and body signed by the attestation key"),
    ("tcb.fmspc", "PCK FMSPC and PCE-ID are the TCB info's"),
    ("tcb.platform", "platform TCB level (SGX components, PCESVN, TDX TEE_TCB_SVN)"),
    ("tcb.tdx_module", "TDX module signer, attributes and TCB level"),
    ("tcb.qe", "QE TCB level from its ISVSVN"),
    ("tcb.status", "merged TCB status is not Revoked"),
)


def checks_for(tee: str) -> tuple[str, ...]:
    """The checks that apply to a quote of this TEE ("sgx" quotes have no TDX module)."""
    return tuple(name for name, _ in CHECKS if tee == "tdx" or name != "tcb.tdx_module")


@dataclass(frozen=True, slots=True)
class CollateralSummary:
    """Which collateral a verdict used: enough to judge its freshness and reproduce it."""

    digest: str
    tcb_evaluation_data_number: int
    tcb_info_issue_date: datetime
    tcb_info_next_update: datetime
    qe_identity_issue_date: datetime
    qe_identity_next_update: datetime
    root_ca_crl_next_update: datetime | None
    pck_crl_next_update: datetime | None

    @property
    def oldest_issue_date(self) -> datetime:
        return min(self.tcb_info_issue_date, self.qe_identity_issue_date)


@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    """A quote whose every DCAP check passed. `tcb_status` may still be one a policy rejects."""

    quote: Quote
    quote_sha256: str
    tcb_status: tcb.TcbStatus
    advisory_ids: tuple[str, ...]
    platform_tcb: tcb.TcbMatch
    tdx_module_tcb: tcb.TcbMatch | None
    qe_tcb: tcb.TcbMatch
    pck: PckExtensions
    collateral: CollateralSummary
    trust_anchor: str
    trust_anchor_sha256: str
    simulated: bool
    checks: tuple[str, ...]

    @property
    def tee(self) -> str:
        return self.quote.tee

    @property
    def fmspc(self) -> str:
        return self.pck.fmspc.hex().upper()

    @property
    def measurements(self) -> dict[str, str]:
        return report_measurements(self.quote.report)


def report_measurements(report: SgxReportBody | TdReport10) -> dict[str, str]:
    """The identity fields of a report body, hex encoded, named as in Intel's specifications."""
    if isinstance(report, SgxReportBody):
        return {
            "mrenclave": report.mr_enclave.hex(),
            "mrsigner": report.mr_signer.hex(),
            "isvprodid": str(report.isv_prod_id),
            "isvsvn": str(report.isv_svn),
            "attributes": report.attributes.raw.hex(),
            "report_data": report.report_data.hex(),
        }
    out = {
        "mrtd": report.mr_td.hex(),
        "rtmr0": report.rtmr0.hex(),
        "rtmr1": report.rtmr1.hex(),
        "rtmr2": report.rtmr2.hex(),
        "rtmr3": report.rtmr3.hex(),
        "mrseam": report.mr_seam.hex(),
        "mrsignerseam": report.mr_signer_seam.hex(),
        "mrconfigid": report.mr_config_id.hex(),
        "mrowner": report.mr_owner.hex(),
        "mrownerconfig": report.mr_owner_config.hex(),
        "td_attributes": report.td_attributes.raw.hex(),
        "xfam": report.xfam.hex(),
        "tee_tcb_svn": report.tee_tcb_svn.hex(),
        "report_data": report.report_data.hex(),
    }
    if isinstance(report, TdReport15):
        out["tee_tcb_svn2"] = report.tee_tcb_svn2.hex()
        out["mrservicetd"] = report.mr_service_td.hex()
    return out
