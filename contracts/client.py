"""Typed web3.py bindings for the deployed contracts.

Every transaction is built for an explicit sender (a `TxSigner`: an eth-account `LocalAccount`,
or a signer whose key never leaves its holder, such as a TEE worker's), gas-estimated (a revert at
estimation surfaces as `RevertError` with the contract's custom error name, before anything is
sent), signed locally and sent raw, so the embedded chain and any RPC node behave the same.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.datastructures import SignedTransaction
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    ProviderConnectionError,
)
from web3.logs import DISCARD
from web3.types import TxReceipt

from contracts import artifacts
from contracts.chain import Chain
from contracts.errors import ChainUnavailableError, RevertError
from contracts.revert import RevertDecoder

__all__ = [
    "TRANSFER_GAS",
    "AgentClient",
    "Deployment",
    "Registration",
    "RequestInfo",
    "Transactor",
    "TxSigner",
    "deploy",
]

_RECEIPT_TIMEOUT = 120.0
TRANSFER_GAS = 21_000


@dataclass(frozen=True)
class RequestInfo:
    """A request as its `Requested` event tells it: what `fulfill` and `cancel` need back."""

    id: int
    caller: str
    fee: int
    deadline: int
    input: bytes
    block_number: int

    @property
    def input_hash(self) -> bytes:
        return keccak(self.input)

    def as_struct(self) -> tuple[str, int, int, bytes]:
        return (self.caller, self.fee, self.deadline, self.input_hash)


@dataclass(frozen=True)
class Registration:
    measurement: bytes
    expires_at: int
    quote_hash: bytes


class TxSigner(Protocol):
    """What sends a transaction: an address and a way to sign (eth-account's `LocalAccount`)."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, transaction_dict: dict[str, Any]) -> SignedTransaction: ...


class Transactor:
    """Sends transactions and calls for one chain, decoding reverts of every known contract."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._decoder = RevertDecoder(artifacts.load(n).abi for n in artifacts.names())

    def contract(self, name: str, address: str) -> Contract:
        return self.chain.w3.eth.contract(address=address, abi=artifacts.load(name).abi)  # type: ignore[call-overload, no-any-return]

    def deploy(self, sender: LocalAccount, name: str, *args: Any) -> Contract:
        artifact = artifacts.load(name)
        factory = self.chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.send(sender, factory.constructor(*args))
        return self.contract(name, str(receipt["contractAddress"]))

    def call(self, fn: ContractFunction) -> Any:
        with self._errors():
            return fn.call()

    def send(
        self,
        sender: TxSigner,
        fn: Any,
        value: int = 0,
        *,
        gas: int | None = None,
        gas_price: int = 0,
    ) -> TxReceipt:
        """Send `fn`; with `gas` (and `gas_price`), a legacy transaction of exactly that gas, so
        a sender holding just enough ether can pay for it (no estimate, no fee-cap margin)."""
        w3 = self.chain.w3
        params: dict[str, Any] = {
            "from": sender.address,
            "value": value,
            "nonce": self._nonce(sender),
            "chainId": self.chain.chain_id,
        }
        if gas is not None:
            params |= {"gas": gas, "gasPrice": gas_price}
        with self._errors():
            tx = fn.build_transaction(params)
            signed = sender.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=_RECEIPT_TIMEOUT)
        if receipt["status"] != 1:
            raise RevertError("", (), f"transaction {tx_hash.hex()} failed on chain")
        return receipt

    def transfer(self, sender: TxSigner, to: str, value: int, *, gas_price: int) -> TxReceipt:
        """Send `value` wei to `to` (a plain 21,000-gas transfer at `gas_price`)."""
        w3 = self.chain.w3
        with self._errors():
            tx = {
                "from": sender.address,
                "to": to,
                "value": value,
                "gas": TRANSFER_GAS,
                "gasPrice": gas_price,
                "nonce": self._nonce(sender),
                "chainId": self.chain.chain_id,
            }
            tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=_RECEIPT_TIMEOUT)
        if receipt["status"] != 1:
            raise RevertError("", (), f"transfer {tx_hash.hex()} failed on chain")
        return receipt

    def _nonce(self, sender: TxSigner) -> int:
        address = to_checksum_address(sender.address)
        return int(self.chain.w3.eth.get_transaction_count(address, "pending"))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Map web3's revert and transport exceptions to `contracts.errors`."""
        try:
            yield
        except (ContractCustomError, ContractPanicError) as exc:
            raise self._decoder.decode(exc.data if isinstance(exc.data, str) else None) from None
        except ContractLogicError as exc:
            error = self._decoder.decode(exc.data if isinstance(exc.data, str) else None)
            raise (error if error.error_name else RevertError("Error", (exc.message,))) from None
        except TransactionFailed as exc:  # the embedded chain reports reverts this way
            raise self._decoder.decode(_embedded_revert_data(exc)) from None
        except (OSError, ProviderConnectionError) as exc:
            raise ChainUnavailableError(f"the chain did not answer: {exc}") from None


def _embedded_revert_data(exc: BaseException) -> bytes | None:
    """py-evm's revert bytes, wrapped by eth-tester (`TransactionFailed(Revert(data))`); on
    `eth_call` eth-tester passes them as the text of a bytes literal (`"b'\\xc3...'"`)."""
    seen: BaseException | None = exc
    while seen is not None:
        for arg in seen.args:
            if isinstance(arg, bytes):
                return arg
            if isinstance(arg, str) and arg.startswith(("b'", 'b"')):
                try:
                    value = ast.literal_eval(arg)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(value, bytes):
                    return value
            if isinstance(arg, BaseException) and arg.args and isinstance(arg.args[0], bytes):
                return bytes(arg.args[0])
        seen = seen.__cause__ or seen.__context__
    return None


@dataclass(frozen=True)
class Deployment:
    """The shared contracts of one chain: verifier, registry and agent factory."""

    verifier: str
    registry: str
    factory: str

    def to_dict(self) -> dict[str, str]:
        return {"verifier": self.verifier, "registry": self.registry, "factory": self.factory}


def deploy(tx: Transactor, owner: LocalAccount, signers: list[str]) -> Deployment:
    """Deploy a `SignedVerdictVerifier` trusting `signers`, a registry over it, a factory."""
    verifier = tx.deploy(owner, "SignedVerdictVerifier", owner.address, signers)
    registry = tx.deploy(owner, "WorkerRegistry", verifier.address, owner.address)
    factory = tx.deploy(owner, "AgentFactory")
    return Deployment(str(verifier.address), str(registry.address), str(factory.address))


def register(tx: Transactor, sender: LocalAccount, registry: str, evidence: bytes) -> Registration:
    """Register a worker with `evidence` through the registry's verifier."""
    contract = tx.contract("WorkerRegistry", registry)
    receipt = tx.send(sender, contract.functions.register(evidence))
    (event,) = contract.events.WorkerRegistered().process_receipt(receipt, errors=DISCARD)
    args = event["args"]
    return Registration(
        bytes(args["measurement"]), int(args["expiresAt"]), bytes(args["quoteHash"])
    )


def create_agent(
    tx: Transactor,
    owner: LocalAccount,
    factory: str,
    *,
    measurement: bytes,
    price: int,
    royalty_bps: int,
    registry: str,
    timeout: int,
) -> AgentClient:
    """Deploy an agent clone pinning `measurement`; `owner` becomes its owner."""
    contract = tx.contract("AgentFactory", factory)
    call = contract.functions.createAgent(measurement, price, royalty_bps, registry, timeout)
    receipt = tx.send(owner, call)
    (event,) = contract.events.AgentCreated().process_receipt(receipt, errors=DISCARD)
    return AgentClient(tx, str(event["args"]["agent"]))


class AgentClient:
    """One agent contract (an EIP-1167 clone)."""

    def __init__(self, tx: Transactor, address: str) -> None:
        self.tx = tx
        self.address = address
        self.contract = tx.contract("Agent", address)

    def request(self, caller: LocalAccount, data: bytes, *, fee: int | None = None) -> RequestInfo:
        value = self.price() if fee is None else fee
        receipt = self.tx.send(caller, self.contract.functions.request(data), value)
        (event,) = self.contract.events.Requested().process_receipt(receipt, errors=DISCARD)
        return request_from_event(event["args"], int(receipt["blockNumber"]))

    def fulfill(
        self, sender: LocalAccount, req: RequestInfo, output: bytes, signature: bytes
    ) -> TxReceipt:
        call = self.contract.functions.fulfill(req.id, req.as_struct(), output, signature)
        return self.tx.send(sender, call)

    def fulfill_batch(
        self, sender: LocalAccount, items: list[tuple[RequestInfo, bytes, bytes]]
    ) -> TxReceipt:
        """Fulfil many requests in one transaction; `items` are (request, output, signature)."""
        args = [(req.id, req.as_struct(), output, sig) for req, output, sig in items]
        return self.tx.send(sender, self.contract.functions.fulfillBatch(args))

    def cancel(self, sender: LocalAccount, req: RequestInfo) -> TxReceipt:
        return self.tx.send(sender, self.contract.functions.cancel(req.id, req.as_struct()))

    def withdraw(self, account: TxSigner, *, gas: int | None = None, gas_price: int = 0) -> int:
        call = self.contract.functions.withdraw()
        receipt = self.tx.send(account, call, gas=gas, gas_price=gas_price)
        (event,) = self.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
        return int(event["args"]["amount"])

    def set_price(self, owner: LocalAccount, price: int) -> TxReceipt:
        return self.tx.send(owner, self.contract.functions.setPrice(price))

    def set_paused(self, owner: LocalAccount, paused: bool) -> TxReceipt:
        return self.tx.send(owner, self.contract.functions.setPaused(paused))

    def transfer_ownership(self, owner: LocalAccount, new_owner: str) -> TxReceipt:
        return self.tx.send(owner, self.contract.functions.transferOwnership(new_owner))

    def price(self) -> int:
        return int(self.tx.call(self.contract.functions.price()))

    def credits(self, account: str) -> int:
        return int(self.tx.call(self.contract.functions.credits(account)))

    def status(self, request_id: int) -> int:
        """0 none, 1 open, 2 fulfilled, 3 cancelled."""
        return int(self.tx.call(self.contract.functions.requestStatus(request_id)))

    def measurement(self) -> bytes:
        return bytes(self.tx.call(self.contract.functions.measurement()))

    def registry(self) -> str:
        return str(self.tx.call(self.contract.functions.registry()))


def request_from_event(args: Any, block_number: int) -> RequestInfo:
    return RequestInfo(
        id=int(args["id"]),
        caller=str(args["caller"]),
        fee=int(args["fee"]),
        deadline=int(args["deadline"]),
        input=bytes(args["input"]),
        block_number=block_number,
    )
