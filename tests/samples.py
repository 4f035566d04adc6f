"""The real DCAP samples (copied byte for byte from ../shared/attestation-samples) and the
expected results their README gives, at the README's timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from attestation import Collateral

SAMPLES = Path(__file__).parent / "data" / "attestation-samples"


@dataclass(frozen=True)
class Sample:
    quote_file: str
    collateral_file: str
    at: int
    status: str | None
    advisory_ids: tuple[str, ...] = ()
    failed_check: str | None = None
    dcap_qvl_error: str | None = None

    @property
    def quote(self) -> bytes:
        return read_quote(self.quote_file)

    @property
    def collateral(self) -> Collateral:
        return Collateral.from_json((SAMPLES / self.collateral_file).read_text())

    @property
    def collateral_text(self) -> str:
        return (SAMPLES / self.collateral_file).read_text()

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


def read_quote(name: str) -> bytes:
    raw = (SAMPLES / name).read_bytes()
    if name.endswith(".hex"):
        return bytes.fromhex(raw.decode().strip().removeprefix("0x"))
    return raw


SGX_V3 = Sample(
    "dcapqvl_sgx_v3_quote.bin",
    "dcapqvl_sgx_v3_collateral.json",
    1750416971,
    "ConfigurationAndSWHardeningNeeded",
    ("INTEL-SA-00289", "INTEL-SA-00615"),
)
TDX_V4 = Sample(
    "dcapqvl_tdx_v4_quote.bin", "dcapqvl_tdx_v4_collateral.json", 1750415547, "UpToDate"
)
NEAR_TDX_V4 = Sample(
    "dcapqvl_near_tdx_v4_quote.hex", "dcapqvl_near_tdx_v4_collateral.json", 1756885319, "UpToDate"
)
GOTDX_V5 = Sample(
    "gotdxguest_tdx_v5_quote.bin", "dcapqvl_tdx_v5_outdated_collateral.json", 1771498731, "UpToDate"
)
OUTDATED_V5 = Sample(
    "dcapqvl_tdx_v5_outdated_quote.bin",
    "dcapqvl_tdx_v5_outdated_collateral.json",
    1771498731,
    None,
    failed_check="tcb.platform",
    dcap_qvl_error="No matching TCB level found",
)
ALIBABA_V5 = Sample(
    "automata_alibaba_tdx_v5_quote.bin",
    "dcapqvl_tdx_v5_outdated_collateral.json",
    1771498731,
    None,
    dcap_qvl_error="Invalid MR service TD",
)
TAPPD_V4 = Sample(
    "dcapqvl_tappd_tdx_v4_quote.hex",
    "dcapqvl_tdx_v4_collateral.json",
    1750415547,
    None,
    failed_check="tcb.platform",
    dcap_qvl_error="No matching TCB level found",
)

VERIFYING = (SGX_V3, TDX_V4, NEAR_TDX_V4, GOTDX_V5)
ALL = (*VERIFYING, OUTDATED_V5, ALIBABA_V5, TAPPD_V4)
