"""The caller's side of a worker gateway: fetch its attestation, verify it, call agents, and
verify every answer (what `enclava call --http` does). HTTP only: the checks themselves are the
pure functions of `enclave.gateway.verify`; the protocol is `enclave.gateway.protocol`.

    client = GatewayClient("https://worker.example")
    nonce = secrets.token_bytes(32)
    verified = client.verify_attestation(
        client.attest(nonce), nonce, collateral=collateral, now=now,
        trust_anchor=TrustAnchor.intel(), policy=policy, expected_measurement=pinned,
    )
    result = client.invoke(verified, "embed", {"input": "hello"})   # encrypted by default

Failed checks raise `GatewayVerificationError` (`gateway_untrusted`, naming the check); the
gateway's own error answers raise `GatewayResponseError` with its code and HTTP status; an
unreachable gateway raises `GatewayClientError`.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestation import Collateral, Policy, TrustAnchor, safejson
from enclave.envelope import EnvelopeContext, seal_request
from enclave.gateway.protocol import ENVELOPE_MEDIA_TYPE
from enclave.gateway.verify import (
    Attestation,
    AttestedAgent,
    GatewayClientError,
    GatewayResponseError,
    GatewayVerificationError,
    InvokeResult,
    VerifiedGateway,
    verify_answer,
    verify_attestation,
    verify_exchange,
)

__all__ = [
    "Attestation",
    "AttestedAgent",
    "GatewayClient",
    "GatewayClientError",
    "GatewayResponseError",
    "GatewayVerificationError",
    "InvokeResult",
    "VerifiedGateway",
    "verify_attestation",
    "verify_exchange",
]


class GatewayClient:
    """HTTP to one gateway. `transport`: an `httpx` transport (tests inject one)."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout)

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def attest(self, nonce: bytes) -> Attestation:
        """Fetch the gateway's attestation for `nonce` (32 fresh random bytes)."""
        return Attestation.from_json(self._get("/v1/attestation", {"nonce": nonce.hex()}))

    def verify_attestation(
        self,
        att: Attestation,
        nonce: bytes,
        *,
        collateral: Collateral,
        now: datetime,
        trust_anchor: TrustAnchor,
        policy: Policy,
        expected_measurement: bytes | None,
        gpu_trust_anchors: Sequence[TrustAnchor] | None = None,
    ) -> VerifiedGateway:
        """`enclave.gateway.verify.verify_attestation` (GPU evidence included)."""
        return verify_attestation(
            att,
            nonce,
            collateral=collateral,
            now=now,
            trust_anchor=trust_anchor,
            policy=policy,
            expected_measurement=expected_measurement,
            gpu_trust_anchors=gpu_trust_anchors,
        )

    def signature(self, response_id: str) -> dict[str, Any]:
        """`GET /v1/signature/{id}`: `text`, `signature`, `signing_address`, `signing_algo`."""
        doc = self._get(f"/v1/signature/{response_id}", {"signing_algo": "ecdsa"})
        if not isinstance(doc, dict):
            raise GatewayVerificationError("response.format", "a signature is a JSON object")
        return doc

    def invoke(
        self, verified: VerifiedGateway, agent: str, input: Any, *, encrypt: bool = True
    ) -> InvokeResult:
        """Call `agent` with `input` (a JSON value, or its JSON text / bytes) and verify the
        signed answer; with `encrypt`, the input and output travel sealed (HPKE)."""
        attested = verified.agents.get(agent)
        if attested is None:
            raise GatewayVerificationError("agent", f"agent {agent!r} is not measured here")
        pinned = verified.expected_measurement
        if pinned is not None and attested.measurement != pinned:
            raise GatewayVerificationError(
                "measurement", f"agent {agent!r} is not the pinned measurement"
            )
        data = _input_bytes(input)
        context = EnvelopeContext(agent, secrets.token_hex(16), verified.chain_id)
        caller_key = X25519PrivateKey.generate()
        if encrypt:
            reply_key = caller_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            envelope = seal_request(verified.x25519_public, reply_key + data, context)
            sealed = base64.b64encode(envelope).decode()
            doc = {"envelope": sealed, "request_id": context.request_id}
            body, media_type = json.dumps(doc).encode(), ENVELOPE_MEDIA_TYPE
        else:
            body, media_type = data, "application/json"
        answer = self._post(f"/v1/agents/{quote(agent, safe='')}/invoke", body, media_type)
        reply_to = caller_key if encrypt else None
        return verify_answer(answer, body, verified, attested, reply_to, context)

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        return self._answer(lambda: self._http.get(path, params=params))

    def _post(self, path: str, body: bytes, media_type: str) -> Any:
        headers = {"content-type": media_type}
        return self._answer(lambda: self._http.post(path, content=body, headers=headers))

    def _answer(self, send: Callable[[], httpx.Response]) -> Any:
        try:
            response = send()
        except httpx.HTTPError as exc:
            raise GatewayClientError(f"gateway unreachable: {exc}") from None
        try:
            doc = safejson.loads(response.content)
        except ValueError:
            doc = None
        if response.status_code != 200:
            error = doc.get("error") if isinstance(doc, dict) else None
            if not isinstance(error, dict):
                error = {"code": "http_error", "message": response.text[:200]}
            raise GatewayResponseError(
                response.status_code, str(error.get("code")), str(error.get("message"))
            )
        if doc is None:
            raise GatewayVerificationError("response.format", "the answer is not JSON")
        return doc


def _input_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
