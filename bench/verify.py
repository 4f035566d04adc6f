"""Quote verification time: ours (cold and warm) against dcap-qvl 0.7.0, on the real samples.

For every sample (tests/samples.py: quote, collateral, pinned time), one run measures,
interleaved round by round (the order of the three rotates every round):

* ours, cold: a new `QuoteVerifier` per call, so nothing is cached (the `TrustAnchor` is loaded
  once, as any deployment holds it; dcap-qvl's root is compiled in);
* ours, warm: one `QuoteVerifier` per sample, primed by one untimed call;
* dcap-qvl: `dcap_qvl.verify(quote, collateral, now)`.

Collateral is pre-loaded for both (`Collateral` / `QuoteCollateralV3` objects); failing
samples are timed too, the rejection caught. Only verification is timed, not `Policy` (so the
MRSERVICETD sample verifies here for us, while dcap-qvl's `verify` rejects it). Each figure is
the median over `--rounds` calls (time.perf_counter_ns, garbage collector paused while timing).

Speedup = dcap-qvl time / our time (> 1: we are faster). The summary speedups are the ratio of
the SUMMED per-sample medians over the verifying samples (the time to verify one of each);
per-sample ratios are printed too. Nothing here asserts a time.

    python bench/verify.py [--rounds N] [--json]

`--json` makes the last line one JSON object: `warm_speedup`, `cold_speedup` and per-sample
figures.
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
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import dcap_qvl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attestation import AttestationError, QuoteVerifier, TrustAnchor
from tests.samples import ALL, VERIFYING, Sample

METHODS = ("cold", "warm", "dcap_qvl")


@dataclass
class Case:
    """One sample, its pre-loaded inputs, a callable per method and the times measured."""

    sample: Sample
    calls: dict[str, Callable[[], str]]
    outcomes: dict[str, str] = field(default_factory=dict)
    times_ns: dict[str, list[int]] = field(default_factory=lambda: {m: [] for m in METHODS})

    @property
    def name(self) -> str:
        return self.sample.quote_file.rsplit(".", 1)[0]

    @property
    def verifying(self) -> bool:
        return self.sample in VERIFYING

    def median_ms(self, method: str) -> float:
        return statistics.median(self.times_ns[method]) / 1e6

    def speedup(self, method: str) -> float:
        return self.median_ms("dcap_qvl") / self.median_ms(method)


def make_case(sample: Sample, anchor: TrustAnchor) -> Case:
    quote, now, at = sample.quote, sample.now, sample.at
    ours_collateral = sample.collateral
    theirs_collateral = dcap_qvl.QuoteCollateralV3.from_json(sample.collateral_text)
    warm_verifier = QuoteVerifier(anchor)

    def ours(verifier: Callable[[], QuoteVerifier]) -> Callable[[], str]:
        def call() -> str:
            try:
                return str(verifier().verify(quote, ours_collateral, now=now).tcb_status)
            except AttestationError as exc:
                return f"rejected ({getattr(exc, 'check', exc.code)})"

        return call

    def theirs() -> str:
        try:
            return str(dcap_qvl.verify(quote, theirs_collateral, at).status)
        except ValueError as exc:
            return f"rejected ({str(exc).splitlines()[0].removeprefix('Verification failed: ')})"

    calls = {
        "cold": ours(lambda: QuoteVerifier(anchor)),
        "warm": ours(lambda: warm_verifier),
        "dcap_qvl": theirs,
    }
    case = Case(sample, calls)
    for method, call in calls.items():  # untimed; primes the warm verifier
        case.outcomes[method] = call()
    return case


def measure(cases: list[Case], rounds: int) -> None:
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            order = METHODS[r % 3 :] + METHODS[: r % 3]
            for case in cases:
                for method in order:
                    call = case.calls[method]
                    start = time.perf_counter_ns()
                    call()
                    case.times_ns[method].append(time.perf_counter_ns() - start)
    finally:
        gc.enable()


def summed_speedup(cases: list[Case], method: str) -> float:
    verifying = [c for c in cases if c.verifying]
    theirs = sum(c.median_ms("dcap_qvl") for c in verifying)
    return theirs / sum(c.median_ms(method) for c in verifying)


def print_table(cases: list[Case], rounds: int) -> None:
    print(
        f"DCAP quote verification, median of {rounds} interleaved calls per figure "
        f"(Python {platform.python_version()}, dcap-qvl {version('dcap-qvl')}, "
        f"{platform.machine()})"
    )
    header = (
        f"{'sample':<30} {'outcome: ours / dcap-qvl':<70} {'cold ms':>8} {'warm ms':>8} "
        f"{'qvl ms':>8} {'qvl/cold':>9} {'qvl/warm':>9}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        outcome = f"{case.outcomes['cold']} / {case.outcomes['dcap_qvl']}"
        print(
            f"{case.name:<30} {outcome[:70]:<70} {case.median_ms('cold'):8.3f} "
            f"{case.median_ms('warm'):8.3f} {case.median_ms('dcap_qvl'):8.3f} "
            f"{case.speedup('cold'):8.2f}x {case.speedup('warm'):8.2f}x"
        )
    print("-" * len(header))
    print(
        f"verifying samples ({sum(c.verifying for c in cases)}), dcap-qvl time / ours, ratio of "
        f"summed medians: cold {summed_speedup(cases, 'cold'):.2f}x, "
        f"warm {summed_speedup(cases, 'warm'):.2f}x  (> 1: ours is faster)"
    )


def report(cases: list[Case], rounds: int) -> dict[str, object]:
    return {
        "benchmark": "verify",
        "baseline": f"dcap-qvl {version('dcap-qvl')}",
        "rounds": rounds,
        "aggregate": "ratio of summed per-sample medians over the verifying samples",
        "cold_speedup": round(summed_speedup(cases, "cold"), 3),
        "warm_speedup": round(summed_speedup(cases, "warm"), 3),
        "samples": [
            {
                "sample": case.sample.quote_file,
                "collateral": case.sample.collateral_file,
                "verifying": case.verifying,
                "outcome": case.outcomes["cold"],
                "dcap_qvl_outcome": case.outcomes["dcap_qvl"],
                "cold_ms": round(case.median_ms("cold"), 4),
                "warm_ms": round(case.median_ms("warm"), 4),
                "dcap_qvl_ms": round(case.median_ms("dcap_qvl"), 4),
                "cold_speedup": round(case.speedup("cold"), 3),
                "warm_speedup": round(case.speedup("warm"), 3),
            }
            for case in cases
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed calls per figure")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    anchor = TrustAnchor.intel()
    cases = [make_case(sample, anchor) for sample in ALL]
    measure(cases, args.rounds)
    print_table(cases, args.rounds)
    if args.json:
        print(json.dumps(report(cases, args.rounds), sort_keys=True))


if __name__ == "__main__":
    main()
