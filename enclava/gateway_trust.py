"""Trusting a worker gateway from the CLI: its attestation, fetched for a fresh nonce and verified
against the collateral, trust anchor and policy the caller chose; and the agent measurement an
agent contract pins, which the attested agent must carry.

Used by `enclava call --http` (pin the called agent to its contract) and by
`enclava call --chain --encrypt-to` (seal the input to an attested worker's X25519 key).
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from eth_utils.address import is_address, to_checksum_address
from web3.exceptions import Web3Exception

from attestation import Collateral, Policy, TrustAnchor
from attestation.token import agent_measurement_id
from contracts.chain import Chain
from contracts.client import AgentClient, Transactor
from enclava.evidence import choose_collateral, gpu_trust_anchors, trust_anchor
from enclava.output import BadInputError
from enclave.gateway_client import (
    AttestedAgent,
    GatewayClient,
    GatewayVerificationError,
    VerifiedGateway,
)

__all__ = [
    "GatewayTrust",
    "agent_contract",
    "contract_measurement",
    "pinned_agent",
    "verify_gateway",
]


@dataclass(frozen=True)
class GatewayTrust:
    """How to verify a gateway's quote: the caller's command-line options, unchanged.
    `collateral` and `pccs` exclude each other; with neither, a simulated TEE is checked against
    the local simulator's collateral and a real one against Intel PCS's."""

    allow_simulated: bool = False
    state: Path | None = None
    collateral: Path | None = None
    pccs: str | None = None
    policy: Path | None = None

    def __post_init__(self) -> None:
        if self.collateral is not None and self.pccs is not None:
            raise BadInputError("bad_usage", "pass either --collateral or --pccs, not both")


def verify_gateway(
    client: GatewayClient,
    trust: GatewayTrust,
    *,
    now: datetime,
    expected_measurement: bytes | None = None,
) -> VerifiedGateway:
    """Fetch `client`'s attestation for a fresh 32-byte nonce and verify it (quote, policy,
    REPORTDATA binding, event log, and `expected_measurement` when given); raises
    `GatewayVerificationError` naming the failed check."""
    rules = Policy.from_file(trust.policy) if trust.policy else Policy()
    if trust.allow_simulated:
        rules = dataclasses.replace(rules, allow_simulated=True, allow_simulated_gpu=True)
    nonce = secrets.token_bytes(32)
    att = client.attest(nonce)
    collateral, anchor = _evidence(att.quote, trust, now)
    return client.verify_attestation(
        att,
        nonce,
        collateral=collateral,
        now=now,
        trust_anchor=anchor,
        policy=rules,
        expected_measurement=expected_measurement,
        gpu_trust_anchors=gpu_trust_anchors(trust.allow_simulated, trust.state),
    )


def agent_contract(chain: Chain, address: str) -> AgentClient:
    """The agent contract at `address`; `BadInputError` when no contract lives there."""
    if not is_address(address):
        raise BadInputError("bad_input", f"{address!r} is not an address")
    checksum = to_checksum_address(address)
    if not chain.w3.eth.get_code(checksum):
        raise BadInputError("not_an_agent", f"no contract at {checksum}")
    return AgentClient(Transactor(chain), checksum)


def contract_measurement(client: AgentClient) -> bytes:
    """The `bytes32` the agent contract pins: `agent_measurement_id(bundle digest)`."""
    try:
        return client.measurement()
    except Web3Exception as exc:  # a contract without `measurement()` answers nothing decodable
        raise BadInputError("not_an_agent", f"{client.address} is not an agent: {exc}") from None


def pinned_agent(verified: VerifiedGateway, name: str, onchain: bytes) -> AttestedAgent:
    """The attested agent `name`, provided its bundle digest is the one the contract pins
    (`agent_measurement_id(digest) == onchain`); `GatewayVerificationError` otherwise."""
    attested = verified.agents.get(name)
    if attested is None:
        raise GatewayVerificationError("agent", f"agent {name!r} is not measured here")
    if agent_measurement_id(attested.measurement) != onchain:
        raise GatewayVerificationError(
            "contract_measurement",
            f"agent {name!r} is measured {attested.measurement.hex()[:16]}..., which is not "
            f"the measurement 0x{onchain.hex()[:16]}... the agent contract pins",
        )
    return attested


def _evidence(quote: bytes, trust: GatewayTrust, now: datetime) -> tuple[Collateral, TrustAnchor]:
    """The collateral and trust anchor to verify the gateway's quote against."""
    anchor = trust_anchor(None, simulated=trust.allow_simulated, state=trust.state)
    collateral = choose_collateral(
        quote,
        collateral=trust.collateral,
        pccs=trust.pccs,
        cache_dir=None,
        local_simulator=trust.allow_simulated and trust.pccs is None,
        state=trust.state,
        now=now,
    )
    return collateral, anchor
