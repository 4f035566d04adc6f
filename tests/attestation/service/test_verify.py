"""POST /v1/verify over HTTP (httpx against the app): the verifier's verdict on every sample,
tokens that verify with the published JWKS (PyJWT), the simulator with event logs and key
binding, and the error answers."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI

from attestation import Policy, QuoteVerifier, TrustAnchor
from attestation.eventlog import RuntimeEvent
from attestation.service import ServiceKeys, create_app
from attestation.service.policies import policy_to_dict
from attestation.token import agent_measurement_id
from attestation.verdict import explain_quote
from tests.attestation.service.conftest import (
    AGENT_DIGEST,
    Clock,
    LiveServer,
    SimWorker,
    b64,
    client_for,
    make_sim_worker,
    settings,
)
from tests.samples import ALL, GOTDX_V5, SGX_V3, TDX_V4, Sample

pytestmark = pytest.mark.anyio

SERVICE_KEYS = ("policy", "collateral_source", "event_log", "agents", "binding", "token")
SERVICE_KEYS += ("signed_verdict", "signed_verdict_omitted", "verifier_version", "gpus")
SERVICE_KEYS += ("bundle_sha256",)


def sample_app(sample: Sample, keys: ServiceKeys, **overrides: Any) -> FastAPI:
    return create_app(settings(**overrides), signing=keys, clock=Clock(sample.now))


async def post(app: FastAPI, body: Any) -> tuple[int, dict[str, Any]]:
    async with client_for(app) as client:
        response = await client.post("/v1/verify", json=body)
    return response.status_code, response.json()


# --- the verifier's verdict on every sample ---------------------------------------------------


@pytest.mark.parametrize("sample", ALL, ids=lambda s: s.quote_file)
async def test_every_sample_gets_the_verdict_the_verifier_gives(
    sample: Sample, service_keys: ServiceKeys
) -> None:
    status, body = await post(sample_app(sample, service_keys), {"quote": b64(sample.quote)})
    expected = explain_quote(
        sample.quote,
        sample.collateral,
        now=sample.now,
        policy=Policy(),
        verifier=QuoteVerifier(TrustAnchor.intel()),
    ).to_dict()
    assert status == 200
    assert {k: v for k, v in body.items() if k not in SERVICE_KEYS} == expected
    if sample.status is not None:
        assert body["tcb_status"] == sample.status
    assert (body["token"] is not None) == expected["accepted"]
    assert body["signed_verdict"] is None
    assert body["policy"]["name"] == "default"


@pytest.mark.parametrize(
    "encode",
    [
        lambda raw: raw.hex(),
        lambda raw: "0x" + raw.hex().upper(),
        lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="),
        lambda raw: base64.encodebytes(raw).decode(),  # wrapped at 76 columns
    ],
    ids=["hex", "0x-upper-hex", "urlsafe-unpadded", "wrapped-base64"],
)
async def test_quote_may_be_hex_or_base64(encode: Any, service_keys: ServiceKeys) -> None:
    status, body = await post(sample_app(TDX_V4, service_keys), {"quote": encode(TDX_V4.quote)})
    assert status == 200
    assert body["accepted"] and body["tcb_status"] == "UpToDate"


async def test_named_and_inline_policies_decide(service_keys: ServiceKeys) -> None:
    strict = {"accepted_tcb_statuses": ["UpToDate"], "rejected_advisories": ["INTEL-SA-00615"]}
    app = sample_app(SGX_V3, service_keys, policies={"lenient": {
        "accepted_tcb_statuses": ["ConfigurationAndSWHardeningNeeded"]}})  # fmt: skip
    status, body = await post(app, {"quote": b64(SGX_V3.quote), "policy": "lenient"})
    assert status == 200 and body["accepted"] and body["policy"]["name"] == "lenient"
    assert body["token"] is not None
    status, body = await post(app, {"quote": b64(SGX_V3.quote), "policy": strict})
    assert status == 200 and not body["accepted"]
    assert body["policy"]["inline"] and body["policy"]["name"] is None
    assert any("INTEL-SA-00615" in r for r in body["reasons"])


async def test_token_verifies_with_pyjwt_and_carries_the_claims(
    service_keys: ServiceKeys,
) -> None:
    app = sample_app(TDX_V4, service_keys)
    async with client_for(app) as client:
        body = (await client.post("/v1/verify", json={"quote": b64(TDX_V4.quote)})).json()
        jwks = (await client.get("/.well-known/jwks.json")).json()
    token = body["token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    key = jwt.PyJWK(jwk).key
    # the token's exp is relative to the pinned (2025) clock: check it against that clock
    claims = jwt.decode(token, key, algorithms=["ES256"], options={"verify_exp": False})
    now = int(TDX_V4.now.timestamp())
    assert claims["iat"] == now and now < claims["exp"] <= now + 3600
    assert claims["iss"] == "enclava-attestation-service"
    assert claims["tee"] == "tdx" and claims["tcb_status"] == "UpToDate"
    assert claims["measurements"] == body["measurements"]
    assert claims["report_data"] == body["measurements"]["report_data"]
    assert claims["advisory_ids"] == body["advisory_ids"]
    assert claims["quote_sha256"] == body["quote_sha256"]
    assert claims["agents"] == [] and claims["policy"] == "default"
    assert claims["verifier_version"] == body["verifier_version"]
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, key, algorithms=["ES256"])  # the real clock is past the pinned one


@pytest.fixture
def live_app(service_keys: ServiceKeys, sim_worker: SimWorker, real_now: Any) -> FastAPI:
    return create_app(
        settings(dev=True),
        signing=service_keys,
        dev_domains=[sim_worker.domain],
        clock=Clock(real_now),
    )


def test_token_verifies_against_the_served_jwks_url(
    live: LiveServer, sim_worker: SimWorker
) -> None:
    import httpx

    response = httpx.post(f"{live.url}/v1/verify", json=sim_worker.request(), timeout=10)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    signing_key = jwt.PyJWKClient(f"{live.url}/.well-known/jwks.json").get_signing_key_from_jwt(
        token
    )
    claims = jwt.decode(
        token, signing_key.key, algorithms=["ES256"], issuer="enclava-attestation-service"
    )
    assert claims["tee"] == "simulated"
    assert claims["worker"] == sim_worker.keys.address
    assert claims["agents"][0]["digest"] == AGENT_DIGEST.hex()
    assert claims["event_log_replayed"] is True
    assert claims["report_data_binding"] == "worker_keys"
    assert any("allow_simulated" in r for r in claims["relaxations"])


# --- the simulator: event log, agent measurements, REPORTDATA binding ----------------------


async def test_simulated_worker_is_accepted_only_under_the_dev_policy(
    dev_client: Any, sim_worker: SimWorker
) -> None:
    rejected = (await dev_client.post("/v1/verify", json=sim_worker.request(policy=None))).json()
    assert rejected["verified"] and not rejected["accepted"]
    assert any(r.startswith("trust_anchor:") for r in rejected["reasons"])
    assert rejected["token"] is None and rejected["signed_verdict"] is None
    body = (await dev_client.post("/v1/verify", json=sim_worker.request())).json()
    assert body["accepted"], body["reasons"]
    assert body["tee"] == "simulated"
    assert body["event_log"]["matches"] and body["event_log"]["events"] == 1
    assert body["event_log"]["replayed"]["rtmr3"] == body["measurements"]["rtmr3"]
    assert body["event_log"]["replayed"]["rtmr0"] is None  # a runtime log covers RTMR3 only
    assert body["agents"] == [
        {
            "name": "echo",
            "version": "0.1.0",
            "digest": AGENT_DIGEST.hex(),
            "measurement": "0x" + agent_measurement_id(AGENT_DIGEST).hex(),
        }
    ]
    assert body["binding"] == {
        "kind": "worker_keys",
        "expected": sim_worker.keys.report_data(sim_worker.nonce).hex(),
        "matches": True,
        "address": sim_worker.keys.address,
    }


async def test_rtmr3_replay_mismatch_is_rejected_with_the_reason(
    dev_client: Any, sim_worker: SimWorker
) -> None:
    forged = RuntimeEvent.create("enclava.agent", b'{"digest":"00","name":"x","version":"1"}')
    events = [*sim_worker.events, *_json_events(forged)]
    body = (await dev_client.post("/v1/verify", json=sim_worker.request(event_log=events))).json()
    assert body["verified"] and not body["accepted"]
    assert not body["event_log"]["matches"]
    assert any(r.startswith("event_log: RTMR3: the event log replays to") for r in body["reasons"])
    assert body["agents"] == [] and body["token"] is None


async def test_an_event_whose_digest_does_not_fit_its_payload_is_rejected(
    dev_client: Any, sim_worker: SimWorker
) -> None:
    events = json.loads(json.dumps(sim_worker.events))
    events[0]["event_payload"] = events[0]["event_payload"][:-2] + "00"
    body = (await dev_client.post("/v1/verify", json=sim_worker.request(event_log=events))).json()
    assert not body["accepted"]
    assert any("digest does not match its name and payload" in r for r in body["reasons"])


async def test_missing_event_log_entries_fail_the_replay(
    dev_client: Any, sim_worker: SimWorker
) -> None:
    body = (await dev_client.post("/v1/verify", json=sim_worker.request(event_log=[]))).json()
    assert not body["accepted"] and any(r.startswith("event_log: RTMR3") for r in body["reasons"])


async def test_keys_and_nonce_must_rebuild_the_quoted_report_data(
    dev_client: Any, sim_worker: SimWorker
) -> None:
    request = sim_worker.request()
    request["binding"]["nonce"] = "11" * 32
    body = (await dev_client.post("/v1/verify", json=request)).json()
    assert body["verified"] and not body["accepted"]
    assert body["binding"]["matches"] is False
    assert any(r.startswith("report_data.binding:") for r in body["reasons"])


async def test_plain_expected_report_data_is_checked(
    dev_client: Any, sim_worker: SimWorker
) -> None:
    good = sim_worker.keys.report_data(sim_worker.nonce).hex()
    body = (
        await dev_client.post("/v1/verify", json=sim_worker.request(binding=None, report_data=good))
    ).json()
    assert body["accepted"] and body["binding"]["kind"] == "report_data"
    assert "binding" in body["signed_verdict_omitted"]  # no worker address: no EIP-712 verdict
    bad = sim_worker.request(binding=None, report_data="0x" + "ab" * 64)
    body = (await dev_client.post("/v1/verify", json=bad)).json()
    assert not body["accepted"]
    assert "report_data: REPORTDATA is not the expected value" in body["reasons"]


async def test_a_second_agent_needs_naming_for_a_verdict(
    service_keys: ServiceKeys, real_now: Any
) -> None:
    from attestation.eventlog import agent_event

    other = agent_event("other", "2.0.0", bytes(range(48)))
    worker = make_sim_worker(real_now, other)
    app = create_app(
        settings(dev=True, eip712_chain_id=1, eip712_verifier="0x" + "12" * 20),
        signing=service_keys,
        dev_domains=[worker.domain],
        clock=Clock(real_now),
    )
    status, body = await post(app, worker.request())
    assert status == 200 and body["accepted"] and len(body["agents"]) == 2
    assert body["signed_verdict"] is None and "several agents" in body["signed_verdict_omitted"]
    status, body = await post(app, worker.request(agent="other"))
    assert body["signed_verdict"]["measurement"] == body["agents"][1]["measurement"]
    status, body = await post(app, worker.request(agent="missing"))
    assert "no agent named 'missing'" in body["signed_verdict_omitted"]


async def test_simulators_need_a_dev_configuration(
    service_keys: ServiceKeys, sim_worker: SimWorker
) -> None:
    with pytest.raises(ValueError, match="dev configuration"):
        create_app(settings(), signing=service_keys, dev_domains=[sim_worker.domain])


async def test_a_simulated_quote_without_its_domain_fails_the_chain_check(
    service_keys: ServiceKeys,
) -> None:
    """Without the simulator's domain its quote goes to the Intel root. No collateral is
    fetched for a PCK chain that does not lead there; once Intel collateral for its FMSPC is
    in memory (the simulated platform has a sample's FMSPC), the verdict names the check."""
    worker = make_sim_worker(GOTDX_V5.now)
    app = create_app(settings(dev=True), signing=service_keys, clock=Clock(GOTDX_V5.now))
    status, body = await post(app, worker.request())
    assert status == 422 and body["error"]["code"] == "untrusted_pck_chain"
    assert (await post(app, {"quote": b64(GOTDX_V5.quote)}))[0] == 200
    status, body = await post(app, worker.request())
    assert status == 200 and not body["verified"] and not body["accepted"]
    assert body["error"]["code"] == "certificate_invalid"
    failed = [c["name"] for c in body["checks"] if c["outcome"] == "fail"]
    assert failed == ["pck.chain"]


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{", 400, "malformed_request"),
        (b"\xff\xfe", 400, "malformed_request"),
        (b"[" * 5000 + b"]" * 5000, 400, "malformed_request"),
        (b'{"quote": "@@@"}', 400, "malformed_quote_encoding"),
        (b'{"quote": "abc"}', 400, "malformed_quote_encoding"),
        (b'{"quote": "AAAA"}', 400, "malformed_quote"),
        (b'{"quote": "00"}', 400, "malformed_quote"),
        (b"[]", 422, "invalid_request"),
        (b"{}", 422, "invalid_request"),
        (b'{"quote": 5}', 422, "invalid_request"),
        (b'{"quote": "00", "extra": 1}', 422, "invalid_request"),
        (b'{"quote": "00", "report_data": "zz"}', 422, "invalid_request"),
        (b'{"quote": "00", "policy": "nope"}', 404, "unknown_policy"),
        (b'{"quote": "00", "policy": {"allow_debug": "maybe"}}', 422, "malformed_policy"),
        (b'{"quote": "00", "event_log": [{"imr": 3}]}', 422, "invalid_request"),
    ],
)
async def test_bad_input_gets_a_typed_4xx(
    content: bytes, status: int, code: str, service_keys: ServiceKeys
) -> None:
    async with client_for(sample_app(TDX_V4, service_keys)) as client:
        response = await client.post("/v1/verify", content=content)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


async def test_report_data_and_binding_are_exclusive(
    dev_client: Any, sim_worker: SimWorker
) -> None:
    response = await dev_client.post("/v1/verify", json=sim_worker.request(report_data="00" * 64))
    assert response.status_code == 422 and "not both" in response.json()["error"]["message"]


async def test_oversized_bodies_are_refused_before_parsing(service_keys: ServiceKeys) -> None:
    app = sample_app(TDX_V4, service_keys, max_body_bytes=8192, max_quote_bytes=4096)

    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 1024

    async with client_for(app) as client:
        declared = await client.post("/v1/verify", content=b" " * 9000)
        streamed = await client.post("/v1/verify", content=chunks())
        quote = await client.post("/v1/verify", json={"quote": b64(TDX_V4.quote)})
    for response in (declared, streamed, quote):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"


async def test_event_log_entries_are_capped(dev_client: Any, sim_worker: SimWorker) -> None:
    events = sim_worker.events * 1025
    response = await dev_client.post("/v1/verify", json=sim_worker.request(event_log=events))
    assert response.status_code == 413


async def test_inline_policies_can_be_switched_off(service_keys: ServiceKeys) -> None:
    app = sample_app(TDX_V4, service_keys, allow_inline_policies=False)
    status, body = await post(app, {"quote": b64(TDX_V4.quote), "policy": {}})
    assert status == 422 and body["error"]["code"] == "inline_policy_disabled"


async def test_unknown_routes_and_methods_use_the_error_shape(service_keys: ServiceKeys) -> None:
    async with client_for(sample_app(TDX_V4, service_keys)) as client:
        missing = await client.get("/v2/nothing")
        method = await client.get("/v1/verify")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert method.status_code == 405 and method.json()["error"]["code"] == "method_not_allowed"


# --- the other endpoints -----------------------------------------------------------------------


async def test_policies_are_listed_and_round_trip(service_keys: ServiceKeys) -> None:
    app = sample_app(TDX_V4, service_keys, dev=True, policies={"strict": {
        "accepted_tcb_statuses": ["UpToDate"], "max_collateral_age_seconds": 86400}})  # fmt: skip
    async with client_for(app) as client:
        listed = (await client.get("/v1/policies")).json()
    by_name = {p["name"]: p for p in listed["policies"]}
    assert set(by_name) == {"default", "dev", "gpu-h100-cc", "strict"}
    assert by_name["default"]["default"] and by_name["default"]["relaxations"] == []
    assert by_name["dev"]["relaxations"] and by_name["dev"]["policy"]["allow_simulated"]
    strict = Policy.from_mapping(by_name["strict"]["policy"])
    assert strict.max_collateral_age == timedelta(days=1)
    assert policy_to_dict(strict) == by_name["strict"]["policy"]


async def test_signers_names_the_eip712_signer(service_keys: ServiceKeys) -> None:
    verifier = "0x" + "ab" * 20
    app = sample_app(TDX_V4, service_keys, eip712_chain_id=31337, eip712_verifier=verifier)
    async with client_for(app) as client:
        body = (await client.get("/v1/signers")).json()
    assert body["address"] == service_keys.eip712.address
    assert body["domain"]["chain_id"] == 31337 and body["domain"]["verifying_contract"] == verifier
    assert body["verdict_type"].startswith("Verdict(address worker,bytes32 measurement")


async def test_metrics_count_outcomes_and_show_collateral_age(service_keys: ServiceKeys) -> None:
    app = sample_app(TDX_V4, service_keys)
    async with client_for(app) as client:
        await client.post("/v1/verify", json={"quote": b64(TDX_V4.quote)})
        await client.post("/v1/verify", json={"quote": b64(TDX_V4.quote)})
        await client.post("/v1/verify", json={"quote": b64(SGX_V3.quote)})
        await client.post("/v1/verify", content=b"{")
        text = (await client.get("/metrics")).text
        health = (await client.get("/healthz")).json()
    assert 'enclava_attest_verifications_total{outcome="accepted"} 2.0' in text
    assert 'enclava_attest_verifications_total{outcome="rejected"} 1.0' in text
    assert 'enclava_attest_verifications_total{outcome="invalid"} 1.0' in text
    assert "enclava_attest_verify_duration_seconds_count 4.0" in text
    age = next(
        line
        for line in text.splitlines()
        if line.startswith("enclava_attest_collateral_age_seconds{") and "B0C06F000000" in line
    )
    assert float(age.rsplit(" ", 1)[1]) == pytest.approx(
        (TDX_V4.now - _issued(TDX_V4)).total_seconds()
    )
    assert {c["fmspc"] for c in health["collateral"]} == {"B0C06F000000", "00A067110000"}
    assert all(c["state"] in ("fresh", "stale") for c in health["collateral"])


def _issued(sample: Sample) -> Any:
    from attestation.collateral import parse_qe_identity, parse_tcb_info

    c = sample.collateral
    return min(parse_tcb_info(c.tcb_info).issue_date, parse_qe_identity(c.qe_identity).issue_date)


def _json(events: list[RuntimeEvent]) -> list[dict[str, Any]]:
    from attestation.eventlog import events_to_json

    return events_to_json(events)


def _json_events(event: RuntimeEvent) -> list[dict[str, Any]]:
    return _json([event])
