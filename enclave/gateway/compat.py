"""The de-facto standard shapes the gateway also speaks, so existing clients work unchanged.

OpenAI (`POST /v1/embeddings`, `GET /v1/models`): `model` names an agent that embeds (see
`GatewayState.embeds`); `input` is a text or a list of texts (token arrays are refused:
the agents tokenize themselves); `encoding_format` "float" or "base64" (little-endian float32,
what the `openai` client asks for by default); `dimensions`, when sent, must be the agent's.

NEAR AI private-ml (`GET /v1/attestation/report?nonce=&signing_address=`): the report of
vllm-proxy (`signing_address`, `signing_algo`, `request_nonce`, `intel_quote` as hex,
`nvidia_payload`, `event_log`, `info`, `all_attestations`). One difference a verifier must
know: REPORTDATA here is `protocol.WORKER_BINDING` (it also binds the X25519 key), not
`address || nonce`. An embeddings response is signed exactly as NEAR AI signs a completion:
`sha256(request body):sha256(response body)` over the exact bytes, the signature retrievable
at `GET /v1/signature/{id}` (and sent in the `X-Enclava-Signature` header).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from attestation import safejson
from attestation.eventlog import events_to_json
from enclave.gateway.errors import MalformedRequestError, UnknownAgentError, UnknownSignerError
from enclave.gateway.protocol import SIGNING_ALGO, WORKER_BINDING, sha256_hex
from enclave.gateway.state import (
    Gateway,
    GatewayState,
    json_response,
    new_response_id,
    parse_nonce,
    read_body,
)

__all__ = ["router"]

router = APIRouter()
_ENCODINGS = ("float", "base64")


@router.post("/v1/embeddings", summary="OpenAI embeddings, signed as NEAR AI signs answers")
async def embeddings(request: Request, gateway: Gateway) -> Response:
    async with gateway.admitted():
        body = await read_body(request, gateway.limits.max_body_bytes)
        model, texts, encoding, dimensions = _parse_embeddings_request(body, gateway)
        reply = await gateway.call(model, {"input": texts})
    output = reply.output
    if dimensions is not None and dimensions != output["dimensions"]:
        raise MalformedRequestError(
            f"model {model!r} has {output['dimensions']} dimensions, not {dimensions}",
            code="unsupported_dimensions",
        )
    tokens = sum(output["tokens"])
    response_id = new_response_id("emb")
    document = {
        "object": "list",
        "id": response_id,
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(vector, encoding)}
            for i, vector in enumerate(output["embeddings"])
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    content = json.dumps(document, separators=(",", ":")).encode()
    record = gateway.sign(response_id, model, sha256_hex(body), sha256_hex(content))
    headers = {
        "X-Enclava-Response-Id": response_id,
        "X-Enclava-Signature": record.signature,
        "X-Enclava-Signed-Text": record.text,
    }
    return Response(content, headers=headers, media_type="application/json")


def _parse_embeddings_request(
    body: bytes, gateway: GatewayState
) -> tuple[str, str | list[str], str, int | None]:
    try:
        doc = safejson.loads(body)
    except ValueError:
        raise MalformedRequestError("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedRequestError("the body must be a JSON object")
    model, texts = doc.get("model"), doc.get("input")
    if not isinstance(model, str) or not gateway.embeds(model):
        embedders = sorted(n for n in gateway.agents if gateway.embeds(n))
        raise UnknownAgentError(
            f"no embedding model {str(model)[:64]!r}; served: {embedders}", code="model_not_found"
        )
    if texts is None:
        raise MalformedRequestError("input is required", code="invalid_request")
    if not isinstance(texts, str | list) or (
        isinstance(texts, list) and not all(isinstance(t, str) for t in texts)
    ):
        raise MalformedRequestError(
            "input must be a text or a list of texts (token arrays are not supported)",
            code="unsupported_input",
        )
    encoding = doc.get("encoding_format") or "float"
    if encoding not in _ENCODINGS:
        raise MalformedRequestError(
            f"encoding_format must be one of {list(_ENCODINGS)}", code="unsupported_encoding"
        )
    dimensions = doc.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise MalformedRequestError("dimensions must be a positive integer")
    return model, texts, encoding, dimensions


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


@router.get("/v1/models", summary="OpenAI's model list: the served agents")
async def models(gateway: Gateway) -> Response:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "enclava"}
        for name in gateway.agents
    ]
    return json_response({"object": "list", "data": data})


@router.get("/v1/attestation/report", summary="Attestation in NEAR AI private-ml's shape")
async def attestation_report(
    gateway: Gateway,
    nonce: str | None = None,
    signing_address: str | None = None,
    signing_algo: str | None = None,
    model: str | None = None,
) -> Response:
    if signing_algo not in (None, SIGNING_ALGO):
        raise MalformedRequestError(
            f"unsupported signing_algo {signing_algo[:32]!r}: this gateway signs with ecdsa",
            code="unsupported_signing_algo",
        )
    address = gateway.keys.address
    if signing_address is not None and signing_address.lower() != address.lower():
        raise UnknownSignerError(f"signing address {signing_address[:64]!r} is not served here")
    if model is not None:
        gateway.agent(model)
    nonce_bytes = secrets.token_bytes(32) if nonce is None else parse_nonce(nonce)
    report_data = gateway.keys.report_data(nonce_bytes)
    quote, events = await gateway.evidence(report_data, "report")
    report: dict[str, Any] = {
        "signing_address": address,
        "signing_algo": SIGNING_ALGO,
        "request_nonce": nonce_bytes.hex(),
        "intel_quote": quote.hex(),
        "nvidia_payload": None,
        "event_log": events_to_json(events),
        "info": {
            "tee": gateway.tee.kind,
            "report_data": report_data.hex(),
            "report_data_binding": WORKER_BINDING,
            "x25519_public": gateway.keys.x25519_public.hex(),
            "chain_id": gateway.chain_id,
            "agents": [gateway.describe(name) for name in gateway.agents],
        },
    }
    return json_response({**report, "all_attestations": [report]})
