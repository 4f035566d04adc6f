"""dstack's compose hash (`attestation.compose`), checked against dstack's own reference values
and a real Phala Cloud CVM."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from attestation.compose import (
    AppComposeOptions,
    ComposeFormatError,
    app_compose_for,
    canonical_app_compose,
    check_compose_hash,
    compose_hash,
)
from attestation.errors import EventLogError, PolicyFormatError
from attestation.eventlog import RuntimeEvent, check_rtmrs, events_from_json
from attestation.policy import Policy

SAMPLE = Path(__file__).parents[1] / "data" / "dstack-samples" / "phala_cvm_tcb_info.json"


@pytest.fixture(scope="module")
def cvm() -> dict[str, object]:
    return json.loads(SAMPLE.read_text())


def _events(cvm: dict[str, object]) -> tuple[RuntimeEvent, ...]:
    return events_from_json(cvm["event_log"])


def test_real_cvm_reports_the_sha256_of_its_app_compose_bytes(cvm: dict[str, object]) -> None:
    """A Phala Cloud CVM's `tcb_info` (think-in-universe/near-tee-rng@3c44bdf,
    contracts/tee-rng/src/collateral.rs): its app_compose, pretty-printed as Phala Cloud stored
    it, hashes to the payload of the `compose-hash` event in its event log, whose events replay
    to the RTMR3 in its quote; without a KMS app id, `app-id` is the hash's first 20 bytes."""
    app_compose = str(cvm["app_compose"]).encode()
    digest = compose_hash(app_compose)
    assert digest.hex() == "17285b1c7797e193c3e876621e9755cc0c07ee31225638978d55bb2d50f8f5f5"
    events = _events(cvm)
    check_rtmrs(events, [bytes(48)] * 3 + [bytes.fromhex(str(cvm["rtmr3"]))])
    check_compose_hash(events, digest)
    (app_id,) = [e.payload for e in events if e.event == "app-id"]
    assert app_id == digest[:20]


def test_hash_covers_the_exact_bytes_not_the_json_value(cvm: dict[str, object]) -> None:
    """The CVM hashes the file, so re-encoding the same object changes the hash."""
    original = str(cvm["app_compose"]).encode()
    reencoded = canonical_app_compose(json.loads(original))
    assert json.loads(reencoded) == json.loads(original)
    assert compose_hash(reencoded) != compose_hash(original)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {
                "runner": "docker-compose",
                "requirements": {"os_version": ">=0.6.0", "gpu_policy": {"rego": "package x"}},
            },
            "0eb176e27fed3e305de09e5e83fec2dacc87485eaa612b0164a2d4d0b289ccb3",
        ),
        (
            {
                "runner": "docker-compose",
                "docker_config": {"registry": "docker.io", "future_key": 1},
            },
            "37cd67d88435bdb727b3e240a9a0ff57b7bebbc17eacd573c3d4746aacd104f6",
        ),
    ],
)
def test_canonical_form_matches_dstack_sdk_reference_hashes(
    doc: dict[str, object], expected: str
) -> None:
    """Reference values of Dstack-TEE/dstack sdk/python/tests/test_get_compose_hash.py
    (`test_nested_unknown_fields_do_not_crash`, `test_docker_config_accepts_unknown_fields`),
    which that file calls the JS SDK's values for the same documents."""
    assert compose_hash(canonical_app_compose(doc)).hex() == expected


def test_canonical_form_sorts_nested_keys_compactly_and_keeps_unicode() -> None:
    doc = {"runner": "bash", "name": "测试应用", "b": {"z": [2, {"y": 1, "x": None}], "a": True}}
    assert canonical_app_compose(doc) == (
        '{"b":{"a":true,"z":[2,{"x":null,"y":1}]},"name":"测试应用","runner":"bash"}'.encode()
    )


def test_canonical_form_orders_keys_by_utf16_like_javascript() -> None:
    """JS sorts keys by UTF-16 code units: an astral character (a surrogate pair, 0xD83D...)
    comes before U+FF5E, although its code point is larger."""
    text = canonical_app_compose({"\uff5e": 1, "\U0001f680": 2, "runner": "bash"}).decode()
    assert text.index("\U0001f680") < text.index("\uff5e")


@pytest.mark.parametrize("value", [1.5, float("nan"), b"bytes", {1: "int key"}])
def test_canonical_form_refuses_values_without_one_encoding(value: object) -> None:
    with pytest.raises(ComposeFormatError):
        canonical_app_compose({"runner": "bash", "value": value})


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"not json", b"[]", b'{"name": "x"}', b'{"runner": 1}'],
)
def test_refuses_files_dstack_would_not_boot(raw: bytes) -> None:
    with pytest.raises(ComposeFormatError) as caught:
        compose_hash(raw)
    assert caught.value.code == "malformed_app_compose"


def test_wrapped_docker_compose_has_the_vmm_cli_shape() -> None:
    options = AppComposeOptions(name="enclava", allowed_envs=("B", "A"))
    doc = app_compose_for("services: {}\n", options)
    assert doc["runner"] == "docker-compose"
    assert doc["manifest_version"] == 2
    assert doc["docker_compose_file"] == "services: {}\n"
    assert doc["allowed_envs"] == ["B", "A"]
    assert doc["kms_enabled"] is True
    assert compose_hash(canonical_app_compose(doc)) != compose_hash(
        canonical_app_compose(
            app_compose_for("services: {}\n", dataclasses.replace(options, name="x"))
        )
    )


def test_wrapping_needs_a_name() -> None:
    with pytest.raises(ComposeFormatError):
        app_compose_for("services: {}\n", AppComposeOptions(name=""))


def _with_compose_event(payload: bytes, *extra: RuntimeEvent) -> tuple[RuntimeEvent, ...]:
    return (
        RuntimeEvent.create("app-id", payload[:20]),
        RuntimeEvent.create("compose-hash", payload),
        *extra,
    )


def test_check_rejects_a_log_measuring_another_compose() -> None:
    measured = hashlib.sha256(b"other").digest()
    with pytest.raises(EventLogError, match="not the pinned"):
        check_compose_hash(_with_compose_event(measured), hashlib.sha256(b"pinned").digest())


def test_check_rejects_a_log_without_or_with_two_compose_events() -> None:
    pinned = hashlib.sha256(b"pinned").digest()
    with pytest.raises(EventLogError, match="0 compose-hash"):
        check_compose_hash([RuntimeEvent.create("app-id", pinned[:20])], pinned)
    twice = _with_compose_event(pinned, RuntimeEvent.create("compose-hash", pinned))
    with pytest.raises(EventLogError, match="2 compose-hash"):
        check_compose_hash(twice, pinned)


def test_check_rejects_a_compose_event_whose_digest_was_forged() -> None:
    pinned = hashlib.sha256(b"pinned").digest()
    honest = RuntimeEvent.create("compose-hash", hashlib.sha256(b"other").digest())
    forged = dataclasses.replace(honest, payload=pinned)
    with pytest.raises(EventLogError, match="not a valid RTMR3"):
        check_compose_hash([forged], pinned)


def test_check_rejects_a_compose_event_in_another_register() -> None:
    pinned = hashlib.sha256(b"pinned").digest()
    with pytest.raises(EventLogError, match="not a valid RTMR3"):
        check_compose_hash([RuntimeEvent.create("compose-hash", pinned, imr=2)], pinned)


def test_a_policy_pins_the_dstack_app_by_its_compose_hash(cvm: dict[str, object]) -> None:
    events = _events(cvm)
    measured = compose_hash(str(cvm["app_compose"]).encode())
    assert Policy().compose_reason(events) is None  # not pinned
    assert Policy(compose_hashes=frozenset({measured})).compose_reason(events) is None
    other = Policy.from_mapping({"compose_hashes": ["11" * 32]})
    assert other.compose_hashes == frozenset({bytes.fromhex("11" * 32)})
    assert f"{measured.hex()} is not in the allow-list" in str(other.compose_reason(events))
    assert "no event log" in str(other.compose_reason(None))
    assert "0 compose-hash events" in str(other.compose_reason(()))
    with pytest.raises(PolicyFormatError):
        Policy.from_mapping({"compose_hashes": ["11"]})
