"""The dynamic batcher: concurrent calls merge, a lone call waits max_wait, failures reach all."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from agents.batcher import DynamicBatcher
from agents.errors import RuntimeClosedError

DEADLINE_S = 10.0


class GatedHandler:
    """Doubles its inputs; the first batch blocks until ``release``, so later calls pile up."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[int]] = []

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.entered.set()
        assert self.release.wait(DEADLINE_S)
        return [2 * item for item in items]


def test_calls_arriving_while_a_batch_runs_are_merged_into_one_batch() -> None:
    handler = GatedHandler()
    batcher = DynamicBatcher(handler, max_batch=8, max_wait_s=0.05)
    first = batcher.submit(1)
    assert handler.entered.wait(DEADLINE_S)
    later = [batcher.submit(n) for n in (2, 3, 4)]
    handler.release.set()
    assert first.result(DEADLINE_S) == 2
    assert [f.result(DEADLINE_S) for f in later] == [4, 6, 8]
    assert handler.batches == [[1], [2, 3, 4]]
    assert list(batcher.batch_sizes) == [1, 3]
    batcher.close()


def test_batches_never_exceed_max_batch() -> None:
    handler = GatedHandler()
    batcher = DynamicBatcher(handler, max_batch=2, max_wait_s=0.05)
    first = batcher.submit(0)
    assert handler.entered.wait(DEADLINE_S)
    later = [batcher.submit(n) for n in range(1, 6)]
    handler.release.set()
    assert [f.result(DEADLINE_S) for f in [first, *later]] == [0, 2, 4, 6, 8, 10]
    assert handler.batches == [[0], [1, 2], [3, 4], [5]]
    batcher.close()


def test_a_lone_call_waits_max_wait_for_company_then_runs() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        lambda items: list(items), max_batch=8, max_wait_s=0.2
    )
    started = time.monotonic()
    assert batcher.submit(7).result(DEADLINE_S) == 7
    assert 0.2 <= time.monotonic() - started < DEADLINE_S
    batcher.close()


def test_a_full_batch_does_not_wait_for_max_wait() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        lambda items: list(items), max_batch=2, max_wait_s=60.0
    )
    started = time.monotonic()
    futures = [batcher.submit(1), batcher.submit(2)]
    assert [f.result(DEADLINE_S) for f in futures] == [1, 2]
    assert time.monotonic() - started < DEADLINE_S
    assert list(batcher.batch_sizes) == [2]
    batcher.close()


def test_handler_failure_reaches_every_call_of_the_batch() -> None:
    def fail(items: Sequence[int]) -> list[int]:
        raise RuntimeError("model exploded")

    batcher = DynamicBatcher(fail, max_batch=3, max_wait_s=60.0)
    futures = [batcher.submit(n) for n in range(3)]
    for future in futures:
        with pytest.raises(RuntimeError, match="model exploded"):
            future.result(DEADLINE_S)
    assert list(batcher.batch_sizes) == [3]
    batcher.close()


def test_wrong_number_of_results_is_an_error_for_all() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(
        lambda items: [0], max_batch=2, max_wait_s=60.0
    )
    futures = [batcher.submit(1), batcher.submit(2)]
    for future in futures:
        with pytest.raises(Exception, match="1 results for 2 calls"):
            future.result(DEADLINE_S)
    batcher.close()


def test_close_serves_queued_calls_then_refuses_new_ones() -> None:
    handler = GatedHandler()
    batcher = DynamicBatcher(handler, max_batch=1, max_wait_s=0.0)
    first = batcher.submit(1)
    assert handler.entered.wait(DEADLINE_S)
    queued = batcher.submit(2)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    handler.release.set()
    closer.join(DEADLINE_S)
    assert (first.result(DEADLINE_S), queued.result(DEADLINE_S)) == (2, 4)
    with pytest.raises(RuntimeClosedError):
        batcher.submit(3)
