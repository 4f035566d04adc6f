"""Read contract events from a block cursor, `confirmations` blocks behind the head.

`EventReader.poll()` returns the events of the blocks between its cursor and the confirmed
head, in chain order, and only then advances the cursor: if the node fails mid-way (down,
restarting) it raises `ChainUnavailableError` with the cursor untouched, so the next poll reads
the same blocks again and nothing is lost. The caller persists `cursor` to survive its own
restarts, and de-duplicates by `(tx_hash, log_index)` if it may replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_typing import HexStr
from eth_utils.abi import event_abi_to_log_topic
from web3.contract import Contract

from contracts.chain import Chain
from contracts.errors import ChainUnavailableError

__all__ = ["ChainEvent", "EventReader"]


@dataclass(frozen=True, slots=True)
class ChainEvent:
    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int


class EventReader:
    """Events `names` of `contract`, from block `start` on."""

    def __init__(
        self,
        chain: Chain,
        contract: Contract,
        names: Sequence[str],
        *,
        start: int = 0,
        confirmations: int = 0,
        max_blocks: int = 2000,
    ) -> None:
        self._chain = chain
        self._contract = contract
        abi: list[dict[str, Any]] = [dict(entry) for entry in contract.abi]
        self._events: dict[bytes, str] = {
            bytes(event_abi_to_log_topic(entry)): str(entry["name"])  # type: ignore[arg-type]
            for entry in abi
            if entry.get("type") == "event" and entry.get("name") in names
        }
        missing = set(names) - set(self._events.values())
        if missing:
            raise ValueError(f"events not in the contract's ABI: {sorted(missing)}")
        self.cursor = start
        self.confirmations = confirmations
        self._max_blocks = max_blocks

    def poll(self) -> list[ChainEvent]:
        """New confirmed events since the cursor (possibly none); advances the cursor."""
        try:
            head = int(self._chain.w3.eth.block_number) - self.confirmations
            if head < self.cursor:
                return []
            last = min(head, self.cursor + self._max_blocks - 1)
            logs = self._chain.w3.eth.get_logs(
                {
                    "address": self._contract.address,
                    "fromBlock": self.cursor,
                    "toBlock": last,
                    "topics": [[HexStr("0x" + topic.hex()) for topic in self._events]],
                }
            )
        except ChainUnavailableError:
            raise
        except Exception as exc:  # transport errors differ per provider
            raise ChainUnavailableError(f"cannot read events: {exc}") from None
        events = sorted((self._decode(log) for log in logs), key=_order)
        self.cursor = last + 1
        return events

    def _decode(self, log: Any) -> ChainEvent:
        name = self._events[bytes(log["topics"][0])]
        decoded = self._contract.events[name]().process_log(log)
        return ChainEvent(
            name=name,
            args=dict(decoded["args"]),
            address=str(log["address"]),
            block_number=int(log["blockNumber"]),
            tx_hash=bytes(log["transactionHash"]).hex(),
            log_index=int(log["logIndex"]),
        )


def _order(event: ChainEvent) -> tuple[int, int]:
    return event.block_number, event.log_index
