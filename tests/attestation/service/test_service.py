"""Self-attestation, keys, settings, the runner: everything around POST /v1/verify."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from attestation import Policy, QuoteVerifier
from attestation.eventlog import agent_event
from attestation.service import ServiceKeys, ServiceSettings, backend_attestor, create_app
from attestation.service.__main__ import main
from attestation.service.errors import KeyFileError
from attestation.service.keys import SelfEvidence, service_report_data
from attestation.verdict import explain_quote
from enclave.tee.sim import SimulatedTdx
from tests.attestation.service.conftest import Clock, client_for, settings

pytestmark = pytest.mark.anyio


def _thumbprint(jwk: dict[str, str]) -> bytes:
    """RFC 7638, computed here from the served JWK (not with the service's code)."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


async def test_self_attestation_quote_binds_the_service_keys_and_nonce(
    service_keys: ServiceKeys, real_now: datetime
) -> None:
    sim = SimulatedTdx(now=real_now)
    sim.extend_rtmr(agent_event("attestation-service", "0.1.0", bytes(48)))
    app = create_app(
        settings(),
        signing=service_keys,
        self_attestation=backend_attestor(sim),
        clock=Clock(real_now),
    )
    nonce = os.urandom(32)
    async with client_for(app) as client:
        response = await client.get("/v1/attestation", params={"nonce": nonce.hex()})
        jwks = (await client.get("/.well-known/jwks.json")).json()
        signer = (await client.get("/v1/signers")).json()["address"]
    assert response.status_code == 200, response.text
    body = response.json()
    quote = base64.b64decode(body["quote"])
    expected = service_report_data(signer, _thumbprint(jwks["keys"][0]), nonce)
    assert body["report_data"] == expected.hex() and body["tee"] == "simulated"
    assert body["token_kid"] == jwks["keys"][0]["kid"]
    verdict = explain_quote(
        quote,
        sim.collateral(now=real_now),
        now=real_now,
        policy=Policy(allow_simulated=True, report_data=expected),
        verifier=QuoteVerifier(sim.trust_anchor),
    )
    assert verdict.accepted, verdict.reasons
    assert body["event_log"][0]["event"] == "enclava.agent"


async def test_self_attestation_without_a_tee_is_not_found(service_keys: ServiceKeys) -> None:
    async with client_for(create_app(settings(), signing=service_keys)) as client:
        response = await client.get("/v1/attestation", params={"nonce": "00" * 32})
        bad_nonce = await client.get("/v1/attestation", params={"nonce": "xyz"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_self_attestation"
    assert bad_nonce.status_code == 422


async def test_a_failing_tee_is_a_503_not_a_500(service_keys: ServiceKeys) -> None:
    def broken(report_data: bytes) -> SelfEvidence:
        raise OSError("configfs-tsm: no such device")

    app = create_app(settings(), signing=service_keys, self_attestation=broken)
    async with client_for(app) as client:
        response = await client.get("/v1/attestation", params={"nonce": "00" * 32})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "self_attestation_failed"
    assert "configfs" not in response.text  # the detail goes to the log, not the client


# --- keys -----------------------------------------------------------------------------------


def test_key_file_round_trips_with_owner_only_permissions(tmp_path: Path) -> None:
    keys = ServiceKeys.generate()
    path = tmp_path / "keys" / "service.json"
    keys.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = ServiceKeys.load(path)
    assert loaded.eip712.address == keys.eip712.address
    assert loaded.jwt.private_numbers() == keys.jwt.private_numbers()
    with pytest.raises(KeyFileError, match="not overwriting"):
        keys.save(path)


@pytest.mark.parametrize(
    "content", ["", "[]", '{"version": 1}', '{"version": 1, "secp256k1": "zz", "p256": "00"}']
)
def test_bad_key_files_never_echo_a_key(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(KeyFileError) as raised:
        ServiceKeys.load(path)
    assert "zz" not in raised.value.message


def test_keys_derive_deterministically_from_a_sealing_secret() -> None:
    seed = hashlib.sha256(b"sealed").digest()
    a, b = ServiceKeys.from_seed(seed), ServiceKeys.from_seed(seed)
    assert a.eip712.address == b.eip712.address
    assert a.jwt.private_numbers() == b.jwt.private_numbers()
    assert ServiceKeys.from_seed(bytes(32)).eip712.address != a.eip712.address
    assert "key" not in repr(a).lower().replace("servicekeys", "")


# --- settings ---------------------------------------------------------------------------------


def test_settings_come_from_file_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "attest.toml"
    config.write_text(
        'port = 9000\ndev = true\n[policies.strict]\naccepted_tcb_statuses = ["UpToDate"]\n'
    )
    monkeypatch.setenv("ENCLAVA_ATTEST_CONFIG_FILE", str(config))
    from_file = ServiceSettings()
    assert from_file.port == 9000 and from_file.dev
    assert from_file.policies == {"strict": {"accepted_tcb_statuses": ["UpToDate"]}}
    monkeypatch.setenv("ENCLAVA_ATTEST_PORT", "9100")
    assert ServiceSettings().port == 9100
    assert ServiceSettings(port=9200).port == 9200


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"collateral_mode": "offline"}, "offline_dir"),
        ({"eip712_chain_id": 1}, "together"),
        ({"port": 70000}, "port"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_inconsistent_settings_are_refused(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ServiceSettings(**values)


def test_a_config_file_with_a_typo_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "attest.json"
    config.write_text('{"prot": 1}')
    with pytest.raises(ValueError, match="prot"):
        ServiceSettings(config_file=config)


def test_simulated_policies_need_dev() -> None:
    from attestation.errors import PolicyFormatError

    with pytest.raises(PolicyFormatError, match="only a dev configuration"):
        create_app(
            settings(policies={"sim": {"allow_simulated": True}}), signing=ServiceKeys.generate()
        )


def test_module_runner_refuses_to_start_without_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENCLAVA_ATTEST_KEY_FILE", raising=False)
    assert main(["--port", "0"]) == 2
    assert "key_file" in capsys.readouterr().err


def test_module_runner_serves_with_forked_workers_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from tests.samples import SAMPLES

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "ENCLAVA_ATTEST_COLLATERAL_MODE": "offline",
        "ENCLAVA_ATTEST_OFFLINE_DIR": str(SAMPLES),
        "ENCLAVA_ATTEST_CACHE_DIR": str(tmp_path / "cache"),
    }
    keys = tmp_path / "keys.json"
    command = [sys.executable, "-m", "attestation.service", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(
        [*command, "--key-file", str(keys), "--new-key-file"], env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                signers = httpx.get(f"http://127.0.0.1:{port}/v1/signers", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.05)
        assert signers.json()["address"] == ServiceKeys.load(keys).eip712.address
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
