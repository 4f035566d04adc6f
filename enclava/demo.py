"""The demo job: verify every real sample quote at a time inside its collateral's window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from attestation import Collateral, Policy, QuoteVerifier, TrustAnchor
from attestation.quote import decode_quote_file
from attestation.verdict import Verdict, explain_quote

# (quote file, collateral file, Unix time): the pairs and times of the samples' README.
DEMO_CASES = (
    ("dcapqvl_sgx_v3_quote.bin", "dcapqvl_sgx_v3_collateral.json", 1750416971),
    ("dcapqvl_tdx_v4_quote.bin", "dcapqvl_tdx_v4_collateral.json", 1750415547),
    ("dcapqvl_near_tdx_v4_quote.hex", "dcapqvl_near_tdx_v4_collateral.json", 1756885319),
    ("gotdxguest_tdx_v5_quote.bin", "dcapqvl_tdx_v5_outdated_collateral.json", 1771498731),
    ("dcapqvl_tdx_v5_outdated_quote.bin", "dcapqvl_tdx_v5_outdated_collateral.json", 1771498731),
    ("automata_alibaba_tdx_v5_quote.bin", "dcapqvl_tdx_v5_outdated_collateral.json", 1771498731),
    ("dcapqvl_tappd_tdx_v4_quote.hex", "dcapqvl_tdx_v4_collateral.json", 1750415547),
)


def verify_samples(folder: Path) -> list[tuple[str, Verdict]]:
    """Verdicts under the default policy, Intel root, one cached verifier."""
    verifier = QuoteVerifier(TrustAnchor.intel())
    policy = Policy()
    rows = []
    for quote_file, collateral_file, at in DEMO_CASES:
        raw = decode_quote_file((folder / quote_file).read_bytes())
        collateral = Collateral.from_json((folder / collateral_file).read_text())
        now = datetime.fromtimestamp(at, UTC)
        verdict = explain_quote(raw, collateral, now=now, policy=policy, verifier=verifier)
        rows.append((quote_file, verdict))
    return rows
