"""The worker gateway and its client: attestation bound to a nonce, signed (and encrypted) agent
calls that a relay cannot alter, limits with typed errors, and the OpenAI / NEAR AI shapes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.canonical import dump_canonical
from agents.runtime import AgentRuntime
from attestation import Policy, parse_quote
from attestation.binding import check_worker_report_data
from attestation.eventlog import agent_event
from enclave.envelope import EnvelopeContext, open_response, seal_request
from enclave.gateway import GatewayLimits, create_app
from enclave.gateway.protocol import (
    ENVELOPE_MEDIA_TYPE,
    SIGNATURE_FIELDS,
    encode_answer,
    encode_document,
    recover_signer,
    sha256_hex,
    signed_document,
    signed_text,
)
from enclave.gateway_client import (
    Attestation,
    GatewayResponseError,
    GatewayVerificationError,
    verify_exchange,
)
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx
from tests.enclave.conftest import (
    CHAIN_ID,
    NOW,
    GatedAgent,
    TamperingTransport,
    Worker,
    live_server,
    start_worker,
)

SUM_INPUT = {"values": [1.5, 2, 3.25], "note": "hi"}
SUM_OUTPUT = {"count": 3, "note": "hi", "sum": 6.75}


def sealed_request(
    worker: Worker, agent: str, request_id: str, data: bytes
) -> tuple[bytes, X25519PrivateKey]:
    caller = X25519PrivateKey.generate()
    reply_key = caller.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    context = EnvelopeContext(agent, request_id, CHAIN_ID)
    envelope = seal_request(worker.keys.x25519_public, reply_key + data, context)
    body = {"envelope": base64.b64encode(envelope).decode(), "request_id": request_id}
    return json.dumps(body).encode(), caller


def post_sealed(worker: Worker, agent: str, body: bytes) -> httpx.Response:
    with worker.http() as http:
        return http.post(
            f"/v1/agents/{agent}/invoke",
            content=body,
            headers={"content-type": ENVELOPE_MEDIA_TYPE},
        )


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- attestation ---------------------------------------------------------------------------


def test_attestation_verifies_with_the_simulator_anchor(
    worker: Worker, sum_agent: AgentRuntime
) -> None:
    verified = worker.verify(expected=sum_agent.measurement.digest)
    assert verified.address == worker.keys.address
    assert verified.x25519_public == worker.keys.x25519_public
    assert verified.chain_id == CHAIN_ID
    assert verified.verified_quote.simulated
    assert verified.decision.relaxations  # allow_simulated is named in the decision
    attested = verified.agents["sum"]
    assert (attested.version, attested.measurement) == ("1.0.0", sum_agent.measurement.digest)
    assert attested.programs_digest == sum_agent.programs_digest


def test_attestation_answer_binds_keys_and_nonce(worker: Worker) -> None:
    nonce = bytes(range(32))
    with worker.http() as http:
        doc = http.get("/v1/attestation", params={"nonce": "0x" + nonce.hex()}).json()
    quote = parse_quote(base64.b64decode(doc["quote"]))
    address = bytes.fromhex(doc["address"][2:])
    check_worker_report_data(quote.report.report_data, address, worker.keys.x25519_public, nonce)
    assert doc["tee"] == "simulated"
    assert [a["name"] for a in doc["agents"]] == ["sum"]
    assert {e["event"] for e in doc["event_log"]} == {"enclava.agent", "enclava.agent.programs"}


def test_stale_nonce_is_rejected(worker: Worker) -> None:
    client = worker.client()
    old = client.attest(b"\x01" * 32)
    with pytest.raises(GatewayVerificationError) as caught:
        worker_verify(worker, old, b"\x02" * 32)
    assert caught.value.check == "nonce"
    assert caught.value.code == "gateway_untrusted"


def test_replayed_quote_under_a_fresh_nonce_is_rejected(worker: Worker) -> None:
    """A relay answers a fresh nonce with an old quote, the nonce field rewritten."""
    with worker.http() as http:
        old = http.get("/v1/attestation", params={"nonce": "11" * 32}).json()
    old["nonce"] = "22" * 32
    with pytest.raises(GatewayVerificationError) as caught:
        worker_verify(worker, Attestation.from_json(old), b"\x22" * 32)
    assert caught.value.check == "binding"


def test_wrong_expected_measurement_is_rejected(worker: Worker) -> None:
    with pytest.raises(GatewayVerificationError) as caught:
        worker.verify(expected=hashlib.sha384(b"another agent").digest())
    assert caught.value.check == "measurement"


def test_simulated_quote_is_rejected_by_a_production_policy(worker: Worker) -> None:
    with pytest.raises(GatewayVerificationError) as caught:
        worker.verify(policy=Policy())
    assert caught.value.check == "policy"
    assert "allow_simulated" in caught.value.message


def test_event_log_that_does_not_replay_is_rejected(worker: Worker) -> None:
    def drop_programs_event(request: httpx.Request, body: bytes) -> bytes:
        doc = json.loads(body)
        doc["event_log"] = doc["event_log"][:1]
        return json.dumps(doc).encode()

    client = worker.client(TamperingTransport(worker.transport, drop_programs_event))
    with pytest.raises(GatewayVerificationError) as caught:
        worker.verify(client)
    assert caught.value.check == "event_log"


def test_unmeasured_agent_cannot_be_served(sum_agent: AgentRuntime) -> None:
    tee = SimulatedTdx(now=NOW)
    with pytest.raises(ValueError, match="measure_agents_into"):
        create_app(tee=tee, keys=EnclaveKeys.generate(), agents={"sum": sum_agent}, chain_id=1)
    measurement = sum_agent.measurement.digest
    tee.extend_rtmr(agent_event("sum", "1.0.0", measurement))
    with pytest.raises(ValueError, match="served under"):
        create_app(tee=tee, keys=EnclaveKeys.generate(), agents={"add": sum_agent}, chain_id=1)


def worker_verify(worker: Worker, att: Attestation, nonce: bytes) -> None:
    worker.client().verify_attestation(
        att,
        nonce,
        collateral=worker.tee.collateral(now=NOW),
        now=NOW,
        trust_anchor=worker.tee.trust_anchor,
        policy=Policy(allow_simulated=True),
        expected_measurement=None,
    )


# --- invoke ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encrypt", [False, True])
def test_invoke_round_trip_is_signed_by_the_attested_key(
    worker: Worker, sum_agent: AgentRuntime, encrypt: bool
) -> None:
    client = worker.client()
    result = client.invoke(worker.verify(), "sum", SUM_INPUT, encrypt=encrypt)
    direct = sum_agent.invoke(SUM_INPUT)
    assert result.output == direct.output == SUM_OUTPUT
    assert result.body == direct.body
    assert result.encrypted is encrypt
    assert result.agent.measurement == sum_agent.measurement.digest
    text = signed_text(result.request_sha256, result.response_sha256)
    assert recover_signer(text, result.signature) == worker.keys.address
    kept = client.signature(result.response_id)
    assert kept["text"] == text
    assert kept["signature"] == "0x" + result.signature.hex()
    assert kept["signing_address"] == worker.keys.address


def test_signed_response_follows_the_documented_scheme(worker: Worker) -> None:
    """Verified by hand, as a client in any language would (no GatewayClient)."""
    body = b'{"values": [1, 2]}'
    with worker.http() as http:
        response = http.post("/v1/agents/sum/invoke", content=body)
    answer = response.json()
    assert answer["output"] == {"count": 2, "note": "", "sum": 3.0}
    name, duration = response.headers["server-timing"].split(";dur=")
    assert name == "agent" and float(duration) >= 0  # the model's share of the call, in ms
    assert answer["request_sha256"] == hashlib.sha256(body).hexdigest()
    document = {key: answer[key] for key in ("agent", "id", "output")}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical.encode() == signed_document(answer)
    assert answer["response_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    text = f"{answer['request_sha256']}:{answer['response_sha256']}"
    assert recover_signer(text, answer["signature"]) == worker.keys.address


def test_encrypted_call_keeps_input_and_output_off_the_wire(worker: Worker) -> None:
    seen: list[bytes] = []

    def record(request: httpx.Request, body: bytes) -> bytes:
        seen.extend([request.content, body])
        return body

    client = worker.client(TamperingTransport(worker.transport, record))
    note = "secret-note-4711"
    result = client.invoke(worker.verify(), "sum", {"values": [1], "note": note})
    assert result.output["note"] == note
    assert seen and not any(note.encode() in wire for wire in seen)


def flip_output(doc: dict[str, Any]) -> None:
    doc["output"]["sum"] += 1


def flip_signature(doc: dict[str, Any]) -> None:
    sig = bytearray.fromhex(doc["signature"][2:])
    sig[10] ^= 1
    doc["signature"] = "0x" + sig.hex()


def rename_agent(doc: dict[str, Any]) -> None:
    doc["agent"]["name"] = "other"


def rehash_output(doc: dict[str, Any]) -> None:
    flip_output(doc)
    doc["response_sha256"] = sha256_hex(signed_document(doc))


def other_request(doc: dict[str, Any]) -> None:
    doc["request_sha256"] = "0" * 64


def flip_envelope(doc: dict[str, Any]) -> None:
    sealed = bytearray(base64.b64decode(doc["envelope"]))
    sealed[-1] ^= 1
    doc["envelope"] = base64.b64encode(sealed).decode()


@pytest.mark.parametrize(
    ("tamper", "encrypt", "check"),
    [
        (flip_output, False, "response_hash"),
        (flip_signature, False, "signature"),
        (flip_signature, True, "signature"),
        (rename_agent, False, "response_hash"),
        (rehash_output, False, "signature"),
        (other_request, True, "request_hash"),
        (flip_envelope, True, "response_hash"),
    ],
)
def test_tampered_answer_is_detected(
    worker: Worker, tamper: Any, encrypt: bool, check: str
) -> None:
    verified = worker.verify()

    def rewrite(request: httpx.Request, body: bytes) -> bytes:
        if not request.url.path.endswith("/invoke"):
            return body
        doc = json.loads(body)
        tamper(doc)
        return json.dumps(doc).encode()

    client = worker.client(TamperingTransport(worker.transport, rewrite))
    with pytest.raises(GatewayVerificationError) as caught:
        client.invoke(verified, "sum", SUM_INPUT, encrypt=encrypt)
    assert caught.value.check == check


def test_answer_from_another_call_is_rejected(worker: Worker) -> None:
    """A relay replays an earlier signed answer (another input) in place of the fresh one."""
    client = worker.client()
    verified = worker.verify()
    with worker.http() as http:
        earlier = http.post("/v1/agents/sum/invoke", json={"values": [9]}).content
    relay = TamperingTransport(worker.transport, lambda request, body: earlier)
    with pytest.raises(GatewayVerificationError) as caught:
        worker.client(relay).invoke(verified, "sum", SUM_INPUT, encrypt=False)
    assert caught.value.check == "request_hash"
    assert client.invoke(verified, "sum", SUM_INPUT, encrypt=False).output == SUM_OUTPUT


def test_envelope_replayed_for_another_agent_or_request_id_is_refused(
    sum_agent: AgentRuntime, embed_agent: AgentRuntime
) -> None:
    worker = start_worker({"sum": sum_agent, "embed": embed_agent})
    body, caller = sealed_request(worker, "sum", "req-1", json.dumps(SUM_INPUT).encode())
    assert error_of(post_sealed(worker, "embed", body)) == (400, "envelope_invalid")
    moved = json.loads(body) | {"request_id": "req-2"}
    assert error_of(post_sealed(worker, "sum", json.dumps(moved).encode())) == (
        400,
        "envelope_invalid",
    )
    answer = post_sealed(worker, "sum", body).json()
    sealed = base64.b64decode(answer["envelope"])
    output = open_response(caller, sealed, EnvelopeContext("sum", "req-1", CHAIN_ID))
    assert json.loads(output) == SUM_OUTPUT


def test_unattested_agent_is_not_called(worker: Worker) -> None:
    with pytest.raises(GatewayVerificationError) as caught:
        worker.client().invoke(worker.verify(), "embed", {"input": "x"})
    assert caught.value.check == "agent"


# --- limits and typed errors -----------------------------------------------------------------


def test_body_over_the_limit_is_413(sum_agent: AgentRuntime) -> None:
    worker = start_worker({"sum": sum_agent}, GatewayLimits(max_body_bytes=64))
    with worker.http() as http:
        response = http.post("/v1/agents/sum/invoke", content=b'{"values": [' + b"1," * 40 + b"1]}")
    assert error_of(response) == (413, "request_too_large")


def test_concurrency_limit_answers_429_without_blocking_the_loop(
    sum_agent: AgentRuntime,
) -> None:
    gated = GatedAgent(sum_agent)
    worker = start_worker({"sum": gated}, GatewayLimits(max_concurrent=1))

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=worker.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            first = asyncio.create_task(http.post("/v1/agents/sum/invoke", json=SUM_INPUT))
            await asyncio.wait_for(gated.entered.wait(), 5)
            second = await http.post("/v1/agents/sum/invoke", json=SUM_INPUT)
            health = await http.get("/healthz")
            gated.release.set()
            return await asyncio.wait_for(first, 5), second, health

    first, second, health = asyncio.run(scenario())
    assert first.status_code == 200 and first.json()["output"] == SUM_OUTPUT
    assert error_of(second) == (429, "overloaded")
    assert health.json()["in_flight"] == 1


def test_agent_that_does_not_answer_in_time_is_504(sum_agent: AgentRuntime) -> None:
    worker = start_worker({"sum": GatedAgent(sum_agent)}, GatewayLimits(invoke_timeout_s=0.05))
    with worker.http() as http:
        assert error_of(http.post("/v1/agents/sum/invoke", json=SUM_INPUT)) == (
            504,
            "agent_timeout",
        )


INVOKE = "/v1/agents/sum/invoke"
SEALED = {"content-type": ENVELOPE_MEDIA_TYPE}


@pytest.mark.parametrize(
    ("path", "body", "headers", "expected"),
    [
        ("/v1/agents/nope/invoke", b"{}", {}, (404, "unknown_agent")),
        (INVOKE, b'{"values": "x"}', {}, (422, "input_invalid")),
        (INVOKE, b"{not json", {}, (422, "input_invalid")),
        (INVOKE, b"", {}, (422, "input_invalid")),
        (INVOKE, b'{"values": [' + b"1," * 300 + b"1]}", {}, (413, "input_too_large")),
        (INVOKE, b"[]", SEALED, (400, "malformed_request")),
        (INVOKE, b'{"envelope": "!!", "request_id": "r"}', SEALED, (400, "malformed_request")),
        (INVOKE, b'{"envelope": "AQID", "request_id": "r"}', SEALED, (400, "envelope_invalid")),
        (INVOKE, b'{"envelope": "AQID", "request_id": ""}', SEALED, (400, "malformed_request")),
        (INVOKE, b'{"envelope": "AQID"}', SEALED, (400, "malformed_request")),
        ("/v1/embeddings", b'{"model": "sum", "input": "x"}', {}, (404, "model_not_found")),
        ("/v1/embeddings", b"\xff\xfe", {}, (400, "malformed_request")),
        ("/v1/embeddings", b"[1]", {}, (400, "malformed_request")),
    ],
)
def test_bad_input_gets_a_typed_4xx(
    worker: Worker, path: str, body: bytes, headers: dict[str, str], expected: tuple[int, str]
) -> None:
    with worker.http() as http:
        assert error_of(http.post(path, content=body, headers=headers)) == expected


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
FIELDS = st.sampled_from(["values", "note", "input", "model", "envelope", "request_id"])
SHAPED = st.dictionaries(FIELDS, JSON | st.just("embed") | st.just("AQID"), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from([INVOKE, "/v1/embeddings"]),
    sealed=st.booleans(),
    body=st.binary(max_size=80)
    | JSON.map(json.dumps).map(str.encode)
    | SHAPED.map(json.dumps).map(str.encode),
)
def test_no_input_makes_the_gateway_fail(
    fuzz_worker: Worker, path: str, sealed: bool, body: bytes
) -> None:
    with fuzz_worker.http() as http:
        response = http.post(path, content=body, headers=SEALED if sealed else {})
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert set(response.json()["error"]) == {"code", "message"}


@pytest.fixture(scope="module")
def fuzz_worker(sum_agent: AgentRuntime, embed_agent: AgentRuntime) -> Worker:
    return start_worker({"sum": sum_agent, "embed": embed_agent})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/attestation", (400, "invalid_nonce")),
        ("/v1/attestation?nonce=abc", (400, "invalid_nonce")),
        ("/v1/attestation?nonce=" + "00" * 31, (400, "invalid_nonce")),
        ("/v1/attestation/report?nonce=zz", (400, "invalid_nonce")),
        ("/v1/attestation/report?signing_address=0x" + "11" * 20, (404, "unknown_signing_address")),
        ("/v1/attestation/report?signing_algo=ed25519", (400, "unsupported_signing_algo")),
        ("/v1/signature/inv-0000", (404, "unknown_response")),
        ("/v1/nothing", (404, "not_found")),
    ],
)
def test_bad_queries_get_a_typed_4xx(worker: Worker, path: str, expected: tuple[int, str]) -> None:
    with worker.http() as http:
        assert error_of(http.get(path)) == expected


def test_agent_errors_of_encrypted_calls_withhold_the_message(worker: Worker) -> None:
    body, _ = sealed_request(worker, "sum", "r1", b'{"values": ["secret-value"]}')
    status, code = error_of(response := post_sealed(worker, "sum", body))
    assert (status, code) == (422, "input_invalid")
    assert "withheld" in response.json()["error"]["message"]
    with pytest.raises(GatewayResponseError) as caught:
        worker.client().invoke(worker.verify(), "sum", {"values": []})
    assert (caught.value.status, caught.value.code) == (422, "input_invalid")


def test_signatures_are_kept_in_a_bounded_store(sum_agent: AgentRuntime) -> None:
    worker = start_worker({"sum": sum_agent}, GatewayLimits(signature_cache=2))
    with worker.http() as http:
        ids = [
            http.post("/v1/agents/sum/invoke", json={"values": [n]}).json()["id"] for n in range(3)
        ]
        assert error_of(http.get(f"/v1/signature/{ids[0]}")) == (404, "unknown_response")
        assert http.get(f"/v1/signature/{ids[2]}").status_code == 200


def test_agents_health_and_metrics(worker: Worker, sum_agent: AgentRuntime) -> None:
    with worker.http() as http:
        agents = http.get("/v1/agents").json()["agents"]
        assert agents[0]["measurement"] == sum_agent.measurement.hex
        assert agents[0]["programs"] == sum_agent.program_digests()
        assert agents[0]["openai_embeddings"] is False
        assert http.get("/healthz").json()["status"] == "ok"
        http.post("/v1/agents/sum/invoke", json=SUM_INPUT)
        http.post("/v1/agents/sum/invoke", json={"values": "x"})
        metrics = http.get("/metrics").text
    assert 'enclava_gateway_invocations_total{agent="sum",outcome="ok"} 1.0' in metrics
    assert 'enclava_gateway_invocations_total{agent="sum",outcome="input_invalid"} 1.0' in metrics
    assert 'enclava_gateway_errors_total{code="input_invalid"} 1.0' in metrics


# --- NEAR AI and OpenAI shapes ---------------------------------------------------------------


def test_near_ai_shaped_report(worker: Worker) -> None:
    nonce = bytes(range(32))
    address = worker.keys.address
    with worker.http() as http:
        report = http.get(
            "/v1/attestation/report",
            params={"nonce": nonce.hex(), "signing_address": address.lower()},
        ).json()
        fresh = http.get("/v1/attestation/report").json()
    assert report["signing_address"] == address
    assert report["signing_algo"] == "ecdsa"
    assert report["request_nonce"] == nonce.hex()
    assert report["all_attestations"] == [
        {k: v for k, v in report.items() if k != "all_attestations"}
    ]
    quote = parse_quote(bytes.fromhex(report["intel_quote"]))
    check_worker_report_data(
        quote.report.report_data, bytes.fromhex(address[2:]), worker.keys.x25519_public, nonce
    )
    assert report["info"]["x25519_public"] == worker.keys.x25519_public.hex()
    assert len(bytes.fromhex(fresh["request_nonce"])) == 32


def test_openai_client_gets_the_agents_embeddings(
    embed_worker: Worker, embed_agent: AgentRuntime
) -> None:
    openai = pytest.importorskip("openai")
    texts = ["A cat sat on the mat.", "Quantum chromodynamics is hard."]
    direct = embed_agent.invoke({"input": texts}).output
    with live_server(embed_worker.app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        as_base64 = client.embeddings.create(model="embed", input=texts)
        as_float = client.embeddings.create(model="embed", input=texts, encoding_format="float")
        raw = client.embeddings.with_raw_response.create(model="embed", input="hello")
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="gpt-4", input="x")
        path = f"/v1/signature/{raw.http_response.json()['id']}"
        with httpx.Client(base_url=url) as http:
            kept = http.get(path, params={"model": "embed", "signing_algo": "ecdsa"}).json()
            assert error_of(http.get(path, params={"model": "sum"})) == (404, "unknown_response")
    assert [d.index for d in as_base64.data] == [0, 1]
    assert as_base64.model == "embed"
    assert as_base64.usage.prompt_tokens == sum(direct["tokens"])
    for got, want in zip(as_base64.data, direct["embeddings"], strict=True):
        np.testing.assert_allclose(got.embedding, want, atol=1e-6)
    assert [d.embedding for d in as_float.data] == direct["embeddings"]
    request_body, response_body = raw.http_request.content, raw.http_response.content
    verify_exchange(
        request_body, response_body, kept["text"], kept["signature"], embed_worker.keys.address
    )
    assert raw.http_response.headers["x-enclava-signature"] == kept["signature"]
    with pytest.raises(GatewayVerificationError):
        verify_exchange(
            request_body,
            response_body + b" ",
            kept["text"],
            kept["signature"],
            embed_worker.keys.address,
        )


def test_embed_agent_through_the_verified_client(
    embed_worker: Worker, embed_agent: AgentRuntime
) -> None:
    verified = embed_worker.verify(expected=embed_agent.measurement.digest)
    with pytest.raises(GatewayVerificationError) as caught:
        embed_worker.client().invoke(verified, "sum", SUM_INPUT)
    assert caught.value.check == "measurement"
    result = embed_worker.client().invoke(verified, "embed", {"input": "hello"})
    assert result.output == embed_agent.invoke({"input": "hello"}).output
    assert result.agent.programs_digest == embed_agent.programs_digest


def test_openai_shape_rejects_token_arrays_and_wrong_dimensions(embed_worker: Worker) -> None:
    with embed_worker.http() as http:
        tokens = http.post("/v1/embeddings", json={"model": "embed", "input": [[1, 2]]})
        dims = http.post("/v1/embeddings", json={"model": "embed", "input": "x", "dimensions": 3})
        encoding = http.post(
            "/v1/embeddings", json={"model": "embed", "input": "x", "encoding_format": "int8"}
        )
        models = http.get("/v1/models").json()
    assert error_of(tokens) == (400, "unsupported_input")
    assert error_of(dims) == (400, "unsupported_dimensions")
    assert error_of(encoding) == (400, "unsupported_encoding")
    assert [m["id"] for m in models["data"]] == ["embed", "sum"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(output=_json_values, response_id=st.text(max_size=12), agent_name=st.text(max_size=8))
def test_spliced_answer_bytes_are_the_canonical_json_of_the_answer(
    output: object, response_id: str, agent_name: str
) -> None:
    """The gateway splices the agent's canonical output into the answer instead of encoding it
    again; the bytes must be exactly `dump_canonical` of the whole answer, or hashes break."""
    agent = {"measurement": "ab", "name": agent_name, "programs_digest": "cd", "version": "1"}
    document = encode_document(agent, response_id, dump_canonical(output))
    assert document == signed_document({"agent": agent, "id": response_id, "output": output})
    fields = {name: f"v-{name}" for name in SIGNATURE_FIELDS}
    answer = {"agent": agent, "id": response_id, "output": output, **fields}
    assert encode_answer(document, fields) == dump_canonical(answer)
    sealed = {"agent": agent, "id": response_id, "envelope": "AAEC+/=="}
    assert encode_answer(signed_document(sealed), fields) == dump_canonical({**sealed, **fields})
