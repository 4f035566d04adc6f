"""The worker's durable state: one SQLite file (WAL, `synchronous=FULL`) holding, per served agent,
the next block to read and every request seen, keyed by (agent address, request id).

A job moves `seen → running → submitted → done | failed`. The worker commits each transition
before the side effect that follows it (running the agent, sending the fulfilment), so after a
crash at any point a restarted worker finds every request it had read and resumes each from its
last committed state:

- `seen` / `running`: nothing was sent; the agent runs again (it is deterministic).
- `submitted`: the signed output is stored; it is sent again. The contract closes a request once,
  so a second send reverts `RequestNotOpen` and the job becomes `done`: no request is fulfilled
  twice, whoever's transaction landed first.

Requests and the cursor that passed them are written in one transaction, so a crash between
reading events and recording them re-reads the same blocks; the primary key drops duplicates.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from contracts.client import RequestInfo

__all__ = ["ClosedJob", "Job", "JobState", "WorkerState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursors (
    agent TEXT PRIMARY KEY,
    next_block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    agent TEXT NOT NULL,
    request_id INTEGER NOT NULL,
    caller TEXT NOT NULL,
    fee TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    input BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    state TEXT NOT NULL,
    output BLOB,
    signature BLOB,
    tx_hash TEXT,
    detail TEXT,
    PRIMARY KEY (agent, request_id)
);
CREATE INDEX IF NOT EXISTS jobs_open ON jobs (agent, state)
    WHERE state IN ('seen', 'running', 'submitted');
"""
_COLUMNS = (
    "agent, request_id, caller, fee, deadline, input, block_number, seen_at, state, output, "
    "signature, tx_hash, detail"
)


class JobState(StrEnum):
    SEEN = "seen"
    RUNNING = "running"
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ClosedJob:
    """A job a step closed (`done` or `failed`). `agent` is the agent contract's checksum
    address; `tx_hash` is set when this worker's transaction fulfilled it; `detail` is the
    failure code (`expired`, an agent error code, a revert name) or `closed_elsewhere`."""

    agent: str
    request_id: int
    state: JobState
    tx_hash: str | None
    detail: str | None

    @property
    def outcome(self) -> str:
        """`fulfilled`, `closed_elsewhere` or `failed`."""
        if self.state is JobState.FAILED:
            return "failed"
        return "fulfilled" if self.tx_hash is not None else "closed_elsewhere"


@dataclass(frozen=True)
class Job:
    """One request of one agent and how far the worker got with it.

    `output` and `signature` are set from `submitted` on; `tx_hash` when this worker's
    fulfilment was mined; `detail` says why a job is `failed` (a stable code such as `expired`)
    or how a `done` job closed without this worker (`closed_elsewhere`)."""

    agent: str
    request: RequestInfo
    seen_at: float
    state: JobState
    output: bytes | None = None
    signature: bytes | None = None
    tx_hash: str | None = None
    detail: str | None = None


class WorkerState:
    """Open (or create) the state file at `path`. Safe to share between threads; one process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def cursor(self, agent: str) -> int | None:
        """The next block to read for `agent`, or None if it was never read."""
        with self._lock:
            row = self._db.execute(
                "SELECT next_block FROM cursors WHERE agent = ?", (agent,)
            ).fetchone()
        return None if row is None else int(row[0])

    def record(
        self, agent: str, requests: Iterable[RequestInfo], next_block: int, *, now: float
    ) -> int:
        """Record `requests` as `seen` (ignoring known ones) and move the cursor, atomically.
        Returns how many were new."""
        rows = [
            (agent, r.id, r.caller, str(r.fee), r.deadline, r.input, r.block_number, now)
            for r in requests
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO jobs (agent, request_id, caller, fee, deadline, input,"
                    " block_number, seen_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'seen')",
                    rows,
                )
                added = self._db.total_changes - before
                self._db.execute(
                    "INSERT INTO cursors (agent, next_block) VALUES (?, ?)"
                    " ON CONFLICT (agent) DO UPDATE SET next_block = excluded.next_block",
                    (agent, next_block),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def transition(
        self,
        agent: str,
        request_id: int,
        state: JobState,
        *,
        output: bytes | None = None,
        signature: bytes | None = None,
        tx_hash: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Move one job to `state`, committed before this returns. Fields left None are kept."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, output = COALESCE(?, output),"
                " signature = COALESCE(?, signature), tx_hash = COALESCE(?, tx_hash),"
                " detail = COALESCE(?, detail) WHERE agent = ? AND request_id = ?",
                (str(state), output, signature, tx_hash, detail, agent, request_id),
            )
        if cur.rowcount != 1:
            raise KeyError(f"no job {request_id} of agent {agent}")

    def open_jobs(self, agent: str) -> list[Job]:
        """Jobs of `agent` not yet `done` or `failed`, oldest request first."""
        return self._select(
            "WHERE agent = ? AND state IN ('seen', 'running', 'submitted') ORDER BY request_id",
            (agent,),
        )

    def job(self, agent: str, request_id: int) -> Job | None:
        rows = self._select("WHERE agent = ? AND request_id = ?", (agent, request_id))
        return rows[0] if rows else None

    def jobs(self, agent: str) -> list[Job]:
        return self._select("WHERE agent = ? ORDER BY request_id", (agent,))

    def _select(self, where: str, params: tuple[object, ...]) -> list[Job]:
        """`where` is one of this module's constant clauses; values travel in `params`."""
        query = f"SELECT {_COLUMNS} FROM jobs {where}"  # noqa: S608 - constant clauses only
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [_job(row) for row in rows]


def _job(row: Any) -> Job:
    agent, rid, caller, fee, deadline, data, block, seen_at, state, out, sig, tx, detail = row
    request = RequestInfo(
        id=int(rid),
        caller=str(caller),
        fee=int(str(fee)),
        deadline=int(deadline),
        input=bytes(data),
        block_number=int(block),
    )
    return Job(
        agent=str(agent),
        request=request,
        seen_at=float(seen_at),
        state=JobState(str(state)),
        output=None if out is None else bytes(out),
        signature=None if sig is None else bytes(sig),
        tx_hash=None if tx is None else str(tx),
        detail=None if detail is None else str(detail),
    )
