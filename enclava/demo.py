"""The demo job: verify every real sample quote at a time inside its collateral's window, then a
fresh quote from this machine's simulated TDX worker (keys bound, an agent measured in RTMR3)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from pathlib import Path

from attestation import Collateral, Policy, QuoteVerifier, TrustAnchor, agent_event, replay
from attestation.quote import decode_quote_file
from attestation.verdict import Verdict, explain_quote
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx

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


def simulated_worker(now: datetime) -> tuple[str, Verdict]:
    """A worker on an ephemeral simulated TDX: its keys and a fresh nonce bound in REPORTDATA,
    one agent measured into RTMR3, verified under the simulator's root by a policy that allows
    simulated TEEs and pins that REPORTDATA and RTMR3."""
    sim = SimulatedTdx(now=now)
    keys = EnclaveKeys.generate()
    sim.extend_rtmr(agent_event("echo", "0.1.0", hashlib.sha384(b"echo agent bundle").digest()))
    nonce = secrets.token_bytes(32)
    raw = sim.quote(keys.report_data(nonce))
    policy = Policy(
        allow_simulated=True,
        report_data=keys.report_data(nonce),
        rtmr3=frozenset({replay(sim.event_log())[3]}),
    )
    verdict = explain_quote(
        raw,
        sim.collateral(now=now),
        now=now,
        policy=policy,
        verifier=QuoteVerifier(sim.trust_anchor),
    )
    return "simulated TDX worker (this machine)", verdict


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
