"""Verifying a RISC Zero Groth16 receipt (py_ecc) against verifying the quote directly (ours).

Two ways for a relying party to learn a DCAP verdict:

* zk: check Automata's real Groth16 receipt of a DCAP verification
  (tests/data/zk-samples/automata_dcap_risc0_receipt.json) — `verify_receipt`: image ID,
  selector, proof points, and the BN254 pairing in pure Python (py_ecc's optimized_bn128);
* direct (the baseline): `verify_quote` of a real TDX v4 quote with its collateral
  (tests/samples.py `TDX_V4`), cold: nothing cached, the full DCAP check list.

Each figure is the median of `--rounds` calls (time.perf_counter_ns, garbage collector paused
while timing), the two interleaved. Ratio = zk time / direct time (> 1: the receipt is slower to
check off chain; its point is that a contract can check it for a fixed gas cost, see
bench/gas.py). Nothing here asserts a time.

    python bench/zk.py [--rounds N] [--json]

`--json` makes the last line one JSON object: `groth16_verify_ms`, `dcap_verify_ms`, `ratio`.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attestation import TrustAnchor, verify_quote
from attestation.zk import Receipt, verify_receipt
from tests.samples import TDX_V4

RECEIPT = (
    Path(__file__).resolve().parents[1] / "tests/data/zk-samples/automata_dcap_risc0_receipt.json"
)


def calls() -> dict[str, Callable[[], object]]:
    receipt = Receipt.from_json(RECEIPT.read_text())
    quote, collateral, now = TDX_V4.quote, TDX_V4.collateral, TDX_V4.now
    anchor = TrustAnchor.intel()
    return {
        "groth16": lambda: verify_receipt(receipt, image_id=receipt.image_id),
        "dcap": lambda: verify_quote(quote, collateral, now=now, trust_anchor=anchor),
    }


def measure(work: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median milliseconds per call, the methods interleaved round by round."""
    for call in work.values():  # untimed: imports, first-use setup
        call()
    times: dict[str, list[int]] = {name: [] for name in work}
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, call in work.items():
                start = time.perf_counter_ns()
                call()
                times[name].append(time.perf_counter_ns() - start)
    finally:
        gc.enable()
    return {name: statistics.median(t) / 1e6 for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per figure")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    ms = measure(calls(), args.rounds)
    ratio = ms["groth16"] / ms["dcap"]
    print(
        f"median of {args.rounds} calls (Python {platform.python_version()}, "
        f"py_ecc {version('py_ecc')}, {platform.machine()})"
    )
    print(f"Groth16 receipt verification (py_ecc):   {ms['groth16']:9.2f} ms")
    print(f"direct DCAP verify_quote (TDX v4, cold): {ms['dcap']:9.2f} ms")
    print(f"ratio zk / direct: {ratio:.1f}x")
    if args.json:
        doc = {
            "benchmark": "zk",
            "baseline": "verify_quote, cold, tests/samples.py TDX_V4",
            "rounds": args.rounds,
            "groth16_verify_ms": round(ms["groth16"], 3),
            "dcap_verify_ms": round(ms["dcap"], 3),
            "ratio": round(ratio, 3),
        }
        print(json.dumps(doc, sort_keys=True))


if __name__ == "__main__":
    main()
