"""Connect to a chain: the embedded one (eth-tester + py-evm, in process, the default) or any
JSON-RPC URL (Anvil in tests, a testnet, mainnet). The rest of the code cannot tell them apart:
every transaction is built, signed locally by a `LocalAccount` and sent raw.

Signing keys come from the environment (`ENCLAVA_PRIVATE_KEY`) or an encrypted keystore file
(password in `ENCLAVA_KEYSTORE_PASSWORD`), never from a command line. The embedded chain and
Anvil have funded development accounts (`Chain.dev_accounts`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3

from contracts.anvil import ANVIL_MNEMONIC
from contracts.errors import AccountError, ChainUnavailableError

__all__ = ["EMBEDDED", "Chain", "connect", "load_account"]

EMBEDDED = "embedded"
_ANVIL_DEV_ACCOUNTS = 10


@dataclass
class Chain:
    """A connected chain. `url` is "embedded" or the RPC URL."""

    w3: Web3
    url: str
    _dev_keys: tuple[bytes, ...] = ()

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    @property
    def embedded(self) -> bool:
        return self.url == EMBEDDED

    def dev_accounts(self) -> list[LocalAccount]:
        """Funded accounts of a development chain (embedded or Anvil); empty elsewhere."""
        return [Account.from_key(key) for key in self._dev_keys]

    def advance_time(self, seconds: int) -> None:
        """Move a development chain's clock forward and mine a block (tests of deadlines)."""
        if self.embedded:
            tester = self.w3.provider.ethereum_tester  # type: ignore[attr-defined]
            latest = self.w3.eth.get_block("latest")
            tester.time_travel(int(latest["timestamp"]) + seconds)
            tester.mine_blocks(1)
        else:
            self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def connect(url: str = EMBEDDED, *, timeout: float = 10.0) -> Chain:
    """The embedded chain (a fresh one per call) or the node at `url`."""
    if url == EMBEDDED:
        provider = EthereumTesterProvider()
        tester = provider.ethereum_tester
        assert tester is not None
        dev_keys = tuple(k.to_bytes() for k in tester.backend.account_keys)
        return Chain(Web3(provider), EMBEDDED, dev_keys)
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - probe the node once
    except Exception as exc:  # the provider raises transport-specific errors
        raise ChainUnavailableError(f"no chain answers at {url}: {exc}") from None
    keys: tuple[bytes, ...] = ()
    if w3.client_version.lower().startswith("anvil"):
        keys = _anvil_keys()
    return Chain(w3, url, keys)


def _anvil_keys() -> tuple[bytes, ...]:
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        bytes(Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)
        for i in range(_ANVIL_DEV_ACCOUNTS)
    )


def load_account(
    *, keystore: Path | None = None, environ: Mapping[str, str] | None = None
) -> LocalAccount:
    """The signing account: from `keystore` (password in ENCLAVA_KEYSTORE_PASSWORD), else from
    ENCLAVA_PRIVATE_KEY. Raises `AccountError` (never echoing a key) when neither works."""
    env = os.environ if environ is None else environ
    if keystore is not None:
        password = env.get("ENCLAVA_KEYSTORE_PASSWORD")
        if password is None:
            raise AccountError("set ENCLAVA_KEYSTORE_PASSWORD to unlock the keystore")
        try:
            secret = Account.decrypt(json.loads(keystore.read_text()), password)
            account: LocalAccount = Account.from_key(secret)
            return account
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AccountError(f"cannot unlock keystore {keystore}: {type(exc).__name__}") from None
    key = env.get("ENCLAVA_PRIVATE_KEY")
    if not key:
        raise AccountError("no signing key: set ENCLAVA_PRIVATE_KEY or pass a keystore file")
    try:
        account = Account.from_key(key)
    except (ValueError, TypeError):
        raise AccountError("ENCLAVA_PRIVATE_KEY is not a valid private key") from None
    return account
