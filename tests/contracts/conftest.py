"""A deployed stack (verifier, registry, factory, one agent, a registered worker) on the embedded
chain and on a real Anvil node: tests marked `backend` run on both."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from contracts.anvil import AnvilNode, find_anvil
from contracts.chain import EMBEDDED, Chain, connect
from contracts.client import AgentClient, Deployment, Transactor, create_agent, deploy, register
from contracts.errors import ToolchainError
from contracts.typed_data import Verdict, fulfillment_message, verdict_evidence, verdict_message

MEASUREMENT = bytes.fromhex("11" * 32)
PRICE = 10**15
ROYALTY_BPS = 1_000
TIMEOUT = 3_600


@dataclass
class Stack:
    chain: Chain
    tx: Transactor
    deployment: Deployment
    agent: AgentClient
    owner: LocalAccount
    signer: LocalAccount
    worker: LocalAccount
    caller: LocalAccount
    relayer: LocalAccount
    others: list[LocalAccount]

    def now(self) -> int:
        return int(self.chain.w3.eth.get_block("latest")["timestamp"])

    def balance(self, address: str) -> int:
        """Wei held by `address` (an account or a contract)."""
        return int(self.chain.w3.eth.get_balance(to_checksum_address(address)))

    def register(
        self, worker: LocalAccount, *, measurement: bytes = MEASUREMENT, ttl: int = 86_400
    ) -> None:
        evidence = self.evidence(worker, measurement=measurement, ttl=ttl)
        register(self.tx, self.relayer, self.deployment.registry, evidence)

    def evidence(
        self,
        worker: LocalAccount,
        *,
        measurement: bytes = MEASUREMENT,
        ttl: int = 86_400,
        signer: LocalAccount | None = None,
    ) -> bytes:
        """A verdict on `worker` expiring `ttl` seconds after the latest block (negative: already
        expired), signed by `signer` (default: the trusted attestation signer), as evidence."""
        verdict = Verdict(worker.address, measurement, "UpToDate", b"\x22" * 32, self.now() + ttl)
        message = verdict_message(
            verdict, chain_id=self.chain.chain_id, verifier=self.deployment.verifier
        )
        signature = bytes((signer or self.signer).sign_message(message).signature)
        return verdict_evidence(verdict, signature)

    def sign(
        self,
        worker: LocalAccount,
        request_id: int,
        input_hash: bytes,
        output_hash: bytes,
        agent: str | None = None,
        chain_id: int | None = None,
    ) -> bytes:
        message = fulfillment_message(
            chain_id=chain_id or self.chain.chain_id,
            agent=agent or self.agent.address,
            request_id=request_id,
            input_hash=input_hash,
            output_hash=output_hash,
        )
        return bytes(worker.sign_message(message).signature)


def build_stack(chain: Chain) -> Stack:
    owner, signer, worker, caller, relayer, *others = chain.dev_accounts()
    tx = Transactor(chain)
    deployment = deploy(tx, owner, [signer.address])
    agent = create_agent(
        tx, owner, deployment.factory, measurement=MEASUREMENT, price=PRICE,
        royalty_bps=ROYALTY_BPS, registry=deployment.registry, timeout=TIMEOUT,
    )  # fmt: skip
    stack = Stack(chain, tx, deployment, agent, owner, signer, worker, caller, relayer, others)
    stack.register(worker)
    return stack


def require_anvil() -> None:
    """Skip the calling test when the Anvil binary is missing, except in CI, where it fails."""
    try:
        find_anvil()
    except ToolchainError as exc:
        if "CI" in os.environ:
            raise
        pytest.skip(f"{exc} (CI installs it)")


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    require_anvil()
    with AnvilNode() as node:
        yield node


@pytest.fixture(params=[EMBEDDED, "anvil"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The same stack on both backends; on Anvil each test runs from a snapshot it reverts."""
    if request.param == EMBEDDED:
        yield build_stack(connect())
        return
    node: AnvilNode = request.getfixturevalue("anvil")
    chain = connect(node.url)
    snapshot = chain.w3.provider.make_request("evm_snapshot", [])  # type: ignore[arg-type]
    yield build_stack(chain)
    chain.w3.provider.make_request("evm_revert", [snapshot["result"]])  # type: ignore[arg-type]
