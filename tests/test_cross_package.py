"""Where two packages must agree byte for byte: the attestation service's EIP-712 verdict
encoding (`attestation.token`, which may not import `contracts`) and `contracts.typed_data`."""

from __future__ import annotations

from eth_account.messages import SignableMessage
from eth_hash.auto import keccak
from hypothesis import given
from hypothesis import strategies as st

from attestation import token
from contracts import typed_data

ADDRESSES = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
BYTES32 = st.binary(min_size=32, max_size=32)


def _digest(message: SignableMessage) -> bytes:
    return keccak(b"\x19" + message.version + message.header + message.body)


@given(
    worker=ADDRESSES,
    measurement=BYTES32,
    status=st.sampled_from(sorted(typed_data.TCB_STATUS_CODES)),
    quote_hash=BYTES32,
    expires_at=st.integers(0, 2**64 - 1),
    chain_id=st.integers(0, 2**64),
    verifier=ADDRESSES,
    signature=st.binary(min_size=65, max_size=65),
)
def test_service_verdict_digest_and_evidence_equal_the_contracts_package(
    worker: str,
    measurement: bytes,
    status: str,
    quote_hash: bytes,
    expires_at: int,
    chain_id: int,
    verifier: str,
    signature: bytes,
) -> None:
    ours = token.OnchainVerdict(worker, measurement, status, quote_hash, expires_at)
    theirs = typed_data.Verdict(worker, measurement, status, quote_hash, expires_at)
    domain = token.Eip712Domain(chain_id, verifier)
    message = typed_data.verdict_message(theirs, chain_id=chain_id, verifier=verifier)
    assert token.verdict_digest(ours, domain) == _digest(message)
    assert token.verdict_evidence(ours, signature) == typed_data.verdict_evidence(theirs, signature)


def test_tcb_status_codes_are_the_same_table() -> None:
    assert dict(token.TCB_STATUS_CODES) == typed_data.TCB_STATUS_CODES
