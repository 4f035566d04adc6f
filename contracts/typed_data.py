"""The EIP-712 messages the contracts check, built once for every signer (the attestation
service signs verdicts, the enclave signs fulfilments) and the evidence encoding the
`SignedVerdictVerifier` decodes."""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import encode
from eth_account.messages import SignableMessage, encode_typed_data

__all__ = [
    "TCB_STATUS_CODES",
    "Verdict",
    "fulfillment_message",
    "verdict_evidence",
    "verdict_message",
]

# tcbStatus as signed on chain (the statuses a verifier may accept; Revoked is never signed).
TCB_STATUS_CODES = {
    "UpToDate": 0,
    "SWHardeningNeeded": 1,
    "ConfigurationNeeded": 2,
    "ConfigurationAndSWHardeningNeeded": 3,
    "OutOfDate": 4,
    "OutOfDateConfigurationNeeded": 5,
}
_VERDICT_TYPES = [
    {"name": "worker", "type": "address"},
    {"name": "measurement", "type": "bytes32"},
    {"name": "tcbStatus", "type": "uint8"},
    {"name": "quoteHash", "type": "bytes32"},
    {"name": "expiresAt", "type": "uint64"},
]
_FULFILLMENT_TYPES = [
    {"name": "id", "type": "uint256"},
    {"name": "inputHash", "type": "bytes32"},
    {"name": "outputHash", "type": "bytes32"},
]


@dataclass(frozen=True)
class Verdict:
    """An attestation service's verdict on a worker. Sign only verdicts your policy accepted:
    the verifier contract checks the signer, the expiry and the worker, not the TCB status."""

    worker: str
    measurement: bytes
    tcb_status: str
    quote_hash: bytes
    expires_at: int

    def message_data(self) -> dict[str, object]:
        return {
            "worker": self.worker,
            "measurement": self.measurement,
            "tcbStatus": TCB_STATUS_CODES[self.tcb_status],
            "quoteHash": self.quote_hash,
            "expiresAt": self.expires_at,
        }


def _domain(name: str, chain_id: int, contract: str) -> dict[str, object]:
    return {"name": name, "version": "1", "chainId": chain_id, "verifyingContract": contract}


def verdict_message(verdict: Verdict, *, chain_id: int, verifier: str) -> SignableMessage:
    return encode_typed_data(
        domain_data=_domain("Enclava SignedVerdictVerifier", chain_id, verifier),
        message_types={"Verdict": _VERDICT_TYPES},
        message_data=verdict.message_data(),
    )


def verdict_evidence(verdict: Verdict, signature: bytes) -> bytes:
    """`abi.encode(worker, measurement, tcbStatus, quoteHash, expiresAt, signature)`: what
    `WorkerRegistry.register` takes with the `SignedVerdictVerifier`."""
    data = verdict.message_data()
    return encode(
        ["address", "bytes32", "uint8", "bytes32", "uint64", "bytes"], [*data.values(), signature]
    )


def fulfillment_message(
    *, chain_id: int, agent: str, request_id: int, input_hash: bytes, output_hash: bytes
) -> SignableMessage:
    """What a worker signs to fulfil request `request_id` of `agent` with this output."""
    return encode_typed_data(
        domain_data=_domain("Enclava Agent", chain_id, agent),
        message_types={"Fulfillment": _FULFILLMENT_TYPES},
        message_data={"id": request_id, "inputHash": input_hash, "outputHash": output_hash},
    )
