"""Moving a worker's earnings out: the agent contracts credit fees to the worker's enclave
address (the key that signs fulfilments), and only that key can `withdraw` them, so the worker
itself sweeps them to the operator's payout address.

A sweep withdraws every served agent's credit above `min_wei` to the enclave address and
forwards the enclave balance to `to`, less the transfer's gas and a reserve for the next sweep's
gas (`GAS_RESERVE`). The enclave address starts with no ether for gas, so `gas_payer` (the
account paying the worker's other transactions) tops it up to that reserve first. Run it
periodically and at shutdown: a worker whose keys live for one boot only (no sealing key) loses
the credits of a key it never swept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from contracts.client import TRANSFER_GAS, AgentClient, Transactor, TxSigner
from contracts.errors import RevertError

__all__ = ["Payout", "Swept"]

log = logging.getLogger(__name__)

WITHDRAW_GAS = 60_000  # `Agent.withdraw` needs ~35k; the rest is margin
GAS_RESERVE = WITHDRAW_GAS + TRANSFER_GAS


@dataclass(frozen=True)
class Swept:
    """One sweep: wei withdrawn per agent contract, and wei forwarded to the payout address."""

    withdrawn: dict[str, int]
    forwarded: int


@dataclass
class Payout:
    """Sweeps `worker`'s credits in `agents` to `to`; `gas_payer` funds the enclave's gas."""

    tx: Transactor
    worker: TxSigner
    agents: Sequence[str]
    to: str
    gas_payer: LocalAccount
    min_wei: int = 0

    def sweep(self) -> Swept:
        """Withdraw and forward. A chain error propagates (`ContractError`); credits already
        withdrawn stay at the enclave address and go out with the next sweep."""
        gas_price = int(self.tx.chain.w3.eth.gas_price)
        withdrawn: dict[str, int] = {}
        for address in self.agents:
            client = AgentClient(self.tx, address)
            if client.credits(self.worker.address) <= self.min_wei:
                continue
            self._fund(GAS_RESERVE * gas_price, gas_price)
            try:
                amount = client.withdraw(self.worker, gas=WITHDRAW_GAS, gas_price=gas_price)
                withdrawn[address] = amount
            except RevertError as exc:
                if exc.error_name != "NothingToWithdraw":  # a concurrent sweep got there first
                    raise
        balance = self._balance()
        forwarded = balance - (TRANSFER_GAS + GAS_RESERVE) * gas_price
        if forwarded <= self.min_wei:
            forwarded = 0
        else:
            self.tx.transfer(self.worker, self.to, forwarded, gas_price=gas_price)
            log.info("forwarded %d wei of earnings to %s", forwarded, self.to)
        return Swept(withdrawn, forwarded)

    def _balance(self) -> int:
        return int(self.tx.chain.w3.eth.get_balance(to_checksum_address(self.worker.address)))

    def _fund(self, needed: int, gas_price: int) -> None:
        balance = self._balance()
        if balance < needed:
            top_up = needed - balance
            self.tx.transfer(self.gas_payer, self.worker.address, top_up, gas_price=gas_price)
