"""The gateway's wire protocol, shared by the gateway and its clients. Pure: no I/O, no clock.

Signed responses use the scheme of NEAR AI's private-ml gateway (vllm-proxy)::

    text            = f"{request_sha256}:{response_sha256}"      (64 lowercase hex digits each)
    signature       = EIP-191 personal_sign(text) by the worker's secp256k1 key (its attested
                      chain address): 65 bytes r || s || v, sent as "0x" + 130 hex digits
    request_sha256  = SHA-256 of the exact HTTP request body bytes, as received
    response_sha256 = SHA-256 of the *signed response document* (invoke) or of the exact HTTP
                      response body bytes (OpenAI-shaped endpoints)

The signed response document of `POST /v1/agents/{name}/invoke` is the canonical JSON
(`agents.canonical`: UTF-8, keys sorted, `,`/`:` separators, floats in shortest round-trip form)
of exactly these keys of the response object::

    {"agent": {"measurement", "name", "programs_digest", "version"}, "id", "output"}     plain
    {"agent": {"measurement", "name", "programs_digest", "version"}, "id", "envelope"}   encrypted

so it covers the canonical output bytes (`Reply.body`) or the response envelope (base64 text),
and also names the agent, its bundle measurement and program digest: a relay that routes a
request to another agent of the same worker is caught. A client recomputes it from the parsed
response (`signed_document`); agent outputs are already canonical, so in Python the round trip
through JSON is exact.

Envelopes (`enclave.envelope`, HPKE). An encrypted request has the content type
`ENVELOPE_MEDIA_TYPE` and the body `{"envelope": base64(request envelope), "request_id": id}`.
The envelope is sealed to the worker's attested X25519 key for the context (agent from the URL
path, request id, the gateway's chain id); its plaintext is the caller's fresh X25519 public key
(32 raw bytes) followed by the agent's JSON input, so the reply key is authenticated with the
input and a relay cannot substitute its own. The output (canonical bytes) comes back sealed to
that key for the same context, in the response's `envelope` field (base64).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import coincurve
from eth_account.messages import defunct_hash_message
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from agents.canonical import dump_canonical
from attestation.eventlog import RuntimeEvent

__all__ = [
    "ENVELOPE_MEDIA_TYPE",
    "PROGRAMS_EVENT",
    "REPLY_KEY_SIZE",
    "SIGNATURE_FIELDS",
    "SIGNING_ALGO",
    "WORKER_BINDING",
    "encode_answer",
    "encode_document",
    "programs_event",
    "recover_signer",
    "sha256_hex",
    "signed_document",
    "signed_text",
]

ENVELOPE_MEDIA_TYPE = "application/vnd.enclava.envelope+json"
SIGNING_ALGO = "ecdsa"
REPLY_KEY_SIZE = 32
PROGRAMS_EVENT = "enclava.agent.programs"
WORKER_BINDING = "SHA-512('enclava/worker/v1' || address (20) || X25519 key (32) || nonce (32))"
SIGNATURE_FIELDS = ("request_sha256", "response_sha256", "signature", "signing_address")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signed_text(request_sha256: str, response_sha256: str) -> str:
    """The text the worker signs; both digests must be 64 lowercase hex digits."""
    for digest in (request_sha256, response_sha256):
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ValueError("a digest must be 64 lowercase hex digits")
    return f"{request_sha256}:{response_sha256}"


def signed_document(response: Mapping[str, Any]) -> bytes:
    """The canonical bytes whose SHA-256 is an invoke response's `response_sha256`.

    Raises `ValueError` unless the response has `agent`, `id` and exactly one of `output` /
    `envelope`."""
    payload = [key for key in ("output", "envelope") if key in response]
    if len(payload) != 1 or "agent" not in response or "id" not in response:
        raise ValueError("a signed response has agent, id and exactly one of output, envelope")
    document = {key: response[key] for key in ("agent", "id", payload[0])}
    return dump_canonical(document)


def encode_document(agent: Mapping[str, Any], response_id: str, output: bytes) -> bytes:
    """`signed_document` of `{"agent", "id", "output"}` where `output` is canonical JSON already
    (an agent's `Reply.body`): spliced in, not encoded a second time. `output` sorts last of the
    three keys, so the bytes are those `dump_canonical` gives the whole document."""
    head = dump_canonical({"agent": agent, "id": response_id})
    return head[:-1] + b',"output":' + output + b"}"


def encode_answer(document: bytes, signature_fields: Mapping[str, str]) -> bytes:
    """The response body: `document`'s canonical JSON with `signature_fields` (the hashes and the
    signature, whose names all sort after the document's keys) appended, as
    `dump_canonical({**document, **signature_fields})` would give it."""
    if set(signature_fields) != set(SIGNATURE_FIELDS):
        raise ValueError(f"an answer's signature fields are {SIGNATURE_FIELDS}")
    return document[:-1] + b"," + dump_canonical(dict(signature_fields))[1:]


def recover_signer(text: str, signature: str | bytes) -> str:
    """The checksummed address whose EIP-191 personal_sign of `text` is `signature`.
    Raises `ValueError` for a signature that is malformed or recovers no key."""
    if isinstance(signature, str):
        try:
            signature = bytes.fromhex(signature.removeprefix("0x"))
        except ValueError:
            raise ValueError("the signature is not hex") from None
    if len(signature) != 65:
        raise ValueError(f"a signature is 65 bytes (r || s || v), got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise ValueError(f"the signature's v is {v}, not 27 or 28")
    digest = bytes(defunct_hash_message(text=text))
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except ValueError as exc:
        raise ValueError(f"the signature recovers no key: {exc}") from None
    address = keccak(public.format(compressed=False)[1:])[-20:]
    return str(to_checksum_address(address))


def programs_event(name: str, programs: Mapping[str, str], programs_digest: str) -> RuntimeEvent:
    """The RTMR3 event naming an agent's compiled programs: the SHA-384 of each shape bucket's
    StableHLO text and their combination (`AgentRuntime.programs_digest`, named in every signed
    reply). The payload is canonical JSON `{"name", "programs": {bucket: hex}, "programs_digest"}`.
    """
    body = {"name": name, "programs": dict(programs), "programs_digest": programs_digest}
    return RuntimeEvent.create(PROGRAMS_EVENT, dump_canonical(body))
