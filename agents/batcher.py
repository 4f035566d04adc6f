"""A small dynamic batcher: concurrent calls are merged into one handler call.

One worker thread takes the first waiting call, then keeps collecting until it holds ``max_batch``
calls or ``max_wait_s`` has passed since that first call, and hands the batch to the handler. A call
never waits longer than ``max_wait_s`` for company, and a full batch starts at once. The handler
returns one result per call, in order; if it raises, every call of that batch fails with the same
exception. Calls queued before ``close`` are still served.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from agents.errors import AgentError, RuntimeClosedError

__all__ = ["DynamicBatcher"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Call(Generic[T, R]):
    item: T
    future: Future[R]


class DynamicBatcher(Generic[T, R]):
    """Merge concurrent ``submit`` calls into batches of at most ``max_batch`` for ``handler``."""

    def __init__(
        self,
        handler: Callable[[Sequence[T]], Sequence[R]],
        *,
        max_batch: int,
        max_wait_s: float,
        name: str = "agent-batcher",
    ) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_s >= 0")
        self._handler = handler
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[_Call[T, R] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.batch_sizes: deque[int] = deque(maxlen=4096)  # the most recent batches
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queue one call; the returned future resolves to the handler's result for it."""
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeClosedError("the batcher is closed")
            self._queue.put(_Call(item, future))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting calls, serve those already queued, and wait for the worker thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, closing = self._collect(first)
            self._run(batch)
            if closing:
                return

    def _collect(self, first: _Call[T, R]) -> tuple[list[_Call[T, R]], bool]:
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                call = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if call is None:
                return batch, True
            batch.append(call)
        return batch, False

    def _run(self, batch: list[_Call[T, R]]) -> None:
        live = [call for call in batch if call.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches += 1
        self.batch_sizes.append(len(live))
        try:
            results = self._handler([call.item for call in live])
            if len(results) != len(live):
                raise AgentError(f"handler returned {len(results)} results for {len(live)} calls")
        except BaseException as exc:  # every waiting caller must hear of the failure
            for call in live:
                call.future.set_exception(exc)
            return
        for call, result in zip(live, results, strict=True):
            call.future.set_result(result)
