"""Enclave identity keys: sealed at rest to the TEE and its measurement, never exposed."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from attestation import BindingError
from attestation.binding import check_worker_report_data, worker_report_data
from enclave.envelope import EnvelopeContext, seal_request
from enclave.errors import SealingError
from enclave.gateway.protocol import recover_signer
from enclave.keys import EnclaveKeys
from enclave.tee.sim import SimulatedTdx

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_sealed_keys_survive_a_restart(tmp_path: Path) -> None:
    keys = EnclaveKeys.load_or_create(SimulatedTdx(tmp_path / "m", now=NOW), tmp_path / "k.json")
    restarted = SimulatedTdx(tmp_path / "m", now=NOW)
    again = EnclaveKeys.load_or_create(restarted, tmp_path / "k.json")
    assert (again.address, again.x25519_public) == (keys.address, keys.x25519_public)


def test_another_measurement_cannot_unseal(tmp_path: Path) -> None:
    EnclaveKeys.load_or_create(SimulatedTdx(tmp_path / "m", now=NOW), tmp_path / "k.json")
    other_image = SimulatedTdx(tmp_path / "m", image="tampered-image", now=NOW)
    with pytest.raises(SealingError, match="another measurement"):
        EnclaveKeys.load_or_create(other_image, tmp_path / "k.json")


def test_another_machine_cannot_unseal(tmp_path: Path) -> None:
    EnclaveKeys.load_or_create(SimulatedTdx(tmp_path / "m", now=NOW), tmp_path / "k.json")
    with pytest.raises(SealingError):
        EnclaveKeys.load_or_create(SimulatedTdx(tmp_path / "n", now=NOW), tmp_path / "k.json")


@pytest.mark.parametrize("damage", ["flip", "garbage", "version"])
def test_damaged_sealed_file_is_a_sealing_error(tmp_path: Path, damage: str) -> None:
    sim = SimulatedTdx(tmp_path / "m", now=NOW)
    path = tmp_path / "k.json"
    EnclaveKeys.load_or_create(sim, path)
    doc = json.loads(path.read_text())
    if damage == "flip":
        sealed = bytearray.fromhex(doc["sealed"])
        sealed[5] ^= 1
        doc["sealed"] = sealed.hex()
        path.write_text(json.dumps(doc))
    elif damage == "garbage":
        path.write_text("{not json")
    else:
        doc["version"] = 2
        path.write_text(json.dumps(doc))
    with pytest.raises(SealingError):
        EnclaveKeys.load_or_create(sim, path)


def test_sealed_file_is_private_and_holds_no_plain_key(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    keys = EnclaveKeys.load_or_create(SimulatedTdx(tmp_path / "m", now=NOW), path)
    assert path.stat().st_mode & 0o077 == 0
    assert keys.x25519_public.hex() not in path.read_text()
    assert "x25519" not in repr(keys).lower() and keys.address in repr(keys)


def test_report_data_binds_address_x25519_key_and_nonce() -> None:
    keys = EnclaveKeys.generate()
    nonce = secrets.token_bytes(32)
    report_data = keys.report_data(nonce)
    assert len(report_data) == 64
    check_worker_report_data(report_data, keys.address_bytes, keys.x25519_public, nonce)
    other = EnclaveKeys.generate()
    with pytest.raises(BindingError):
        check_worker_report_data(report_data, other.address_bytes, other.x25519_public, nonce)
    with pytest.raises(ValueError, match="nonce"):
        worker_report_data(keys.address_bytes, keys.x25519_public, b"short")


def test_signatures_recover_to_the_enclave_address() -> None:
    keys = EnclaveKeys.generate()
    message = encode_defunct(text="fulfil request 7")
    signature = keys.sign_message(message)
    assert Account.recover_message(message, signature=signature) == keys.address


def test_inputs_encrypted_to_the_enclave_open_inside_it() -> None:
    keys = EnclaveKeys.generate()
    context = EnvelopeContext(agent="echo", request_id="r1", chain_id=31337)
    envelope = seal_request(keys.x25519_public, b"secret input", context)
    assert keys.open_request(envelope, context) == b"secret input"


@pytest.mark.parametrize("text", ["", "a:b", "é" * 40, "x" * 300])
def test_sign_text_is_eip191_personal_sign_and_recovers(text: str) -> None:
    keys = EnclaveKeys.generate()
    signature = keys.sign_text(text)
    assert signature == keys.sign_message(encode_defunct(text=text))  # eth-account's, bit for bit
    assert recover_signer(text, signature) == keys.address
    assert recover_signer(text + ".", signature) != keys.address
    with pytest.raises(ValueError, match="v is"):
        recover_signer(text, signature[:64] + b"\x01")
