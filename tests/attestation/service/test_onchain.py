"""The service's EIP-712 verdict: it recovers to the published signer with eth-account, its
digest is `contracts.typed_data`'s and the contract's, and `SignedVerdictVerifier` on the
embedded chain accepts it (`WorkerRegistry.register`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from eth_account import Account

from attestation.service import ServiceKeys, create_app
from attestation.token import agent_measurement_id
from contracts.chain import connect
from contracts.client import register
from contracts.typed_data import Verdict, verdict_evidence, verdict_message
from tests.attestation.service.conftest import (
    AGENT_DIGEST,
    Clock,
    client_for,
    make_sim_worker,
    settings,
)
from tests.contracts.conftest import Stack, build_stack

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def stack() -> Stack:
    return build_stack(connect())


async def _signed_answer(stack: Stack, keys: ServiceKeys, **extra: Any) -> dict[str, Any]:
    now = datetime.fromtimestamp(stack.now(), UTC)
    worker = make_sim_worker(now)
    app = create_app(
        settings(
            dev=True,
            eip712_chain_id=stack.chain.chain_id,
            eip712_verifier=stack.deployment.verifier,
        ),
        signing=keys,
        dev_domains=[worker.domain],
        clock=Clock(now),
    )
    async with client_for(app) as client:
        response = await client.post("/v1/verify", json=worker.request(**extra))
        signer = (await client.get("/v1/signers")).json()["address"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"], body["reasons"]
    assert body["signed_verdict"] is not None, body["signed_verdict_omitted"]
    body["_signer"] = signer
    body["_worker"] = worker
    return body


def _contracts_verdict(signed: dict[str, Any]) -> Verdict:
    return Verdict(
        signed["worker"],
        bytes.fromhex(signed["measurement"][2:]),
        signed["tcb_status"],
        bytes.fromhex(signed["quote_hash"][2:]),
        signed["expires_at"],
    )


async def test_verdict_recovers_to_the_published_signer(stack: Stack) -> None:
    keys = ServiceKeys.generate()
    body = await _signed_answer(stack, keys)
    signed = body["signed_verdict"]
    message = verdict_message(
        _contracts_verdict(signed),
        chain_id=stack.chain.chain_id,
        verifier=stack.deployment.verifier,
    )
    recovered = Account.recover_message(message, signature=bytes.fromhex(signed["signature"][2:]))
    assert recovered == body["_signer"] == keys.eip712.address == signed["signer"]
    assert signed["worker"] == body["_worker"].keys.address
    assert signed["measurement"] == "0x" + agent_measurement_id(AGENT_DIGEST).hex()
    assert signed["quote_hash"] == "0x" + body["quote_sha256"]
    assert signed["tcb_status"] == body["tcb_status"] == "UpToDate"
    assert signed["expires_at"] <= stack.now() + 86_400


async def test_verdict_digest_is_the_contracts(stack: Stack) -> None:
    body = await _signed_answer(stack, ServiceKeys.generate())
    signed = body["signed_verdict"]
    v = _contracts_verdict(signed)
    contract = stack.tx.contract("SignedVerdictVerifier", stack.deployment.verifier)
    on_chain = stack.tx.call(
        contract.functions.verdictDigest(v.worker, v.measurement, 0, v.quote_hash, v.expires_at)
    )
    assert "0x" + bytes(on_chain).hex() == signed["digest"]
    evidence = verdict_evidence(v, bytes.fromhex(signed["signature"][2:]))
    assert "0x" + evidence.hex() == signed["evidence"]


async def test_signed_verdict_verifier_accepts_the_services_verdict(stack: Stack) -> None:
    keys = ServiceKeys.generate()
    contract = stack.tx.contract("SignedVerdictVerifier", stack.deployment.verifier)
    stack.tx.send(stack.owner, contract.functions.addSigner(keys.eip712.address))
    body = await _signed_answer(stack, keys)
    signed = body["signed_verdict"]
    evidence = bytes.fromhex(signed["evidence"][2:])
    registration = register(stack.tx, stack.relayer, stack.deployment.registry, evidence)
    assert registration.measurement.hex() == signed["measurement"][2:]
    assert registration.expires_at == signed["expires_at"]
    assert registration.quote_hash.hex() == body["quote_sha256"]
    registry = stack.tx.contract("WorkerRegistry", stack.deployment.registry)
    assert stack.tx.call(
        registry.functions.isRegistered(signed["worker"], registration.measurement)
    )


async def test_an_untrusted_service_key_is_refused_on_chain(stack: Stack) -> None:
    from contracts.errors import RevertError

    body = await _signed_answer(stack, ServiceKeys.generate())
    evidence = bytes.fromhex(body["signed_verdict"]["evidence"][2:])
    with pytest.raises(RevertError, match="UnknownSigner"):
        register(stack.tx, stack.relayer, stack.deployment.registry, evidence)


async def test_verdict_domain_in_the_request_overrides_the_default(stack: Stack) -> None:
    other = "0x" + "77" * 20
    body = await _signed_answer(
        stack, ServiceKeys.generate(), verdict_domain={"chain_id": 5, "verifying_contract": other}
    )
    assert body["signed_verdict"]["domain"]["chain_id"] == 5
    assert body["signed_verdict"]["domain"]["verifying_contract"] == other


async def test_inline_policies_get_no_onchain_verdict(stack: Stack) -> None:
    now = datetime.fromtimestamp(stack.now(), UTC)
    worker = make_sim_worker(now)
    app = create_app(
        settings(dev=True, eip712_chain_id=1, eip712_verifier="0x" + "12" * 20),
        signing=ServiceKeys.generate(),
        dev_domains=[worker.domain],
        clock=Clock(now),
    )
    async with client_for(app) as client:
        response = await client.post(
            "/v1/verify", json=worker.request(policy={"allow_simulated": True})
        )
    body = response.json()
    assert body["accepted"] and body["token"] is not None
    assert body["signed_verdict"] is None and "inline" in body["signed_verdict_omitted"]
