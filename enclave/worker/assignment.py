"""Which worker answers which request, when several serve the same agent.

Rendezvous (highest-random-weight) hashing: every worker scores each peer by
`SHA-256(agent ‖ request id as uint256 ‖ peer address)` and the highest score wins. All workers
that agree on the peer set agree on the winner without talking to each other, and when a worker
joins or leaves only the requests it wins or won move. The peer set is configuration (for instance
the addresses registered for the agent's measurement); a worker missing from it is simply never
assigned.

Assignment is an optimisation, not a safety property: the contract closes a request once, so two
workers answering the same request waste gas but never double-charge. After `grace_s` seconds a
request nobody answered is fair game for every worker (its assignee may be down).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["assigned_worker", "may_take"]


def assigned_worker(request_id: int, workers: Sequence[str], *, agent: str = "") -> str:
    """The address among `workers` that should answer `request_id` (of `agent`).

    Addresses compare case-insensitively; the returned one is spelt as given. Raises
    `ValueError` for an empty peer set."""
    if not workers:
        raise ValueError("no workers to assign a request to")
    prefix = _address(agent) if agent else b""
    request = request_id.to_bytes(32, "big")

    def score(worker: str) -> bytes:
        return hashlib.sha256(prefix + request + _address(worker)).digest()

    return max(workers, key=score)


def may_take(
    me: str,
    request_id: int,
    workers: Sequence[str] | None,
    *,
    agent: str = "",
    waited_s: float,
    grace_s: float,
) -> bool:
    """Whether worker `me` should answer now: it is the assignee, no peer set is configured
    (a lone worker), or the request has waited `grace_s` seconds or more."""
    if not workers or waited_s >= grace_s:
        return True
    return assigned_worker(request_id, workers, agent=agent).lower() == me.lower()


def _address(value: str) -> bytes:
    text = value.removeprefix("0x").removeprefix("0X")
    if len(text) != 40:
        raise ValueError(f"{value!r} is not a 20-byte address")
    return bytes.fromhex(text)
