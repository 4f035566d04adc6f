"""Encrypted on-chain calls (`enclava call AGENT --chain --encrypt-to GATEWAY`): the caller's side
of the worker loop's envelopes (`enclave.worker.loop`).

The input is sealed to an attested worker's X25519 key; the key comes from that worker's gateway,
whose attestation is verified for a fresh nonce, and the worker's address must be registered for
the agent's measurement in the agent's registry. On chain::

    input  = seal_request(worker_x25519, reply_public || input_json,
                          onchain_envelope_context(agent, caller, chain_id))
    output = seal_response(reply_public, canonical_output,
                           onchain_response_context(agent, request_id, chain_id))

`reply_public` is the public half of a fresh X25519 key of the caller's (32 raw bytes). The
worker signs the on-chain output bytes (the envelope), so the fulfilment signature is checked as
for a plain call, then the output is opened. A worker that cannot open the input answers in the
clear with `{"error":{"code":...}}`; an input the agent refuses gets that error sealed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestation import safejson
from contracts.client import AgentClient
from enclava.gateway_trust import GatewayTrust, verify_gateway
from enclave.envelope import ENVELOPE_VERSION, open_response, seal_request
from enclave.errors import EnvelopeError
from enclave.gateway_client import GatewayClient
from enclave.worker import onchain_envelope_context, onchain_response_context

__all__ = [
    "CallRejectedError",
    "SealedInput",
    "open_output",
    "refuse_error_answer",
    "seal_to_gateway",
]


class CallRejectedError(Exception):
    """The call was made but its answer is not one to accept (exit status 1); `code` is stable."""

    def __init__(self, code: str, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}


@dataclass(frozen=True)
class SealedInput:
    """An input sealed to `worker`'s attested key, and the caller's key its answer opens with."""

    envelope: bytes
    reply_key: X25519PrivateKey
    worker: str
    gateway: str


def seal_to_gateway(
    gateway: str,
    trust: GatewayTrust,
    agent: AgentClient,
    data: bytes,
    *,
    caller: str,
    chain_id: int,
    now: datetime,
    reply_key: X25519PrivateKey,
) -> SealedInput:
    """Verify `gateway`'s attestation, require its worker to be registered for `agent`'s
    measurement, and seal `data` (the agent's JSON) for `caller`'s request to `agent`.

    Raises `GatewayVerificationError` (untrusted gateway), `CallRejectedError`
    (`worker_not_registered`) or the transport errors of `GatewayClient` / `contracts`."""
    with GatewayClient(gateway) as client:
        verified = verify_gateway(client, trust, now=now)
    registry_address = str(agent.tx.call(agent.contract.functions.registry()))
    registry = agent.tx.contract("WorkerRegistry", registry_address)
    measurement = agent.measurement()
    registered = agent.tx.call(registry.functions.isRegistered(verified.address, measurement))
    if not registered:
        raise CallRejectedError(
            "worker_not_registered",
            f"the gateway's worker {verified.address} is not registered for the agent's "
            f"measurement 0x{measurement.hex()} in registry {registry.address}",
            {"gateway_worker": verified.address},
        )
    reply_public = reply_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    context = onchain_envelope_context(agent.address, caller, chain_id)
    envelope = seal_request(verified.x25519_public, reply_public + data, context)
    return SealedInput(envelope, reply_key, verified.address, gateway)


def output_fields(
    output: bytes, sealed: SealedInput | None, doc: dict[str, Any], chain_id: int
) -> dict[str, Any]:
    """The output fields of `enclava call --chain`'s report `doc`: the plaintext (opened when
    `sealed`), parsed when it is JSON. Raises `CallRejectedError` carrying `doc` for a verified
    error answer or a sealed answer that does not open; an unverified answer (`doc["verified"]`
    false) is shown as is, in hex when sealed."""
    fields: dict[str, Any] = {"encrypted": sealed is not None}
    if sealed is not None:
        fields.update(gateway=sealed.gateway, gateway_worker=sealed.worker)
        if not doc["verified"]:
            return {**fields, "output": "0x" + output.hex(), "output_json": None}
    try:
        if sealed is not None:
            where = {"agent": doc["agent"], "request_id": doc["request_id"], "chain_id": chain_id}
            output = open_output(output, sealed.reply_key, **where)
        if doc["verified"]:
            refuse_error_answer(output)
    except CallRejectedError as exc:
        raise CallRejectedError(exc.code, exc.message, {**doc, **fields, **exc.fields}) from None
    text = output.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(output)
    except ValueError:
        parsed = text
    return {**fields, "output": text, "output_json": parsed}


def open_output(
    output: bytes, reply_key: X25519PrivateKey, *, agent: str, request_id: int, chain_id: int
) -> bytes:
    """The canonical plaintext of a sealed on-chain `output`. Raises `CallRejectedError`: the worker
    answered an error in the clear (`request_refused`: it could not open the input), or the
    output is not sealed or does not open (`envelope_invalid`)."""
    if output[:1] != bytes([ENVELOPE_VERSION]):
        refuse_error_answer(output)
        raise CallRejectedError(
            "envelope_invalid", "the answer to an encrypted request is not sealed"
        )
    context = onchain_response_context(agent, request_id, chain_id)
    try:
        return open_response(reply_key, output, context)
    except EnvelopeError as exc:
        raise CallRejectedError(exc.code, f"the sealed answer does not open: {exc}") from None


def refuse_error_answer(output: bytes) -> None:
    """Raise `CallRejectedError` (`request_refused`; `worker_error`: the worker's code) when
    `output` is a worker's error answer `{"error":{"code":...}}`: the request closed without a
    result."""
    try:
        doc = safejson.loads(output)
    except ValueError:
        return
    if not isinstance(doc, dict) or set(doc) != {"error"} or not isinstance(doc["error"], dict):
        return
    code = doc["error"].get("code")
    if isinstance(code, str):
        raise CallRejectedError(
            "request_refused", f"the worker refused the request: {code}", {"worker_error": code}
        )
