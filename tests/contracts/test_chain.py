"""Signing keys from the environment or a keystore (never echoed in an error), unreachable nodes,
and revert data decoded into `RevertError` whatever the node returns."""

from __future__ import annotations

import json
import socket
import traceback
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_typing import HexStr
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from contracts import artifacts
from contracts.chain import connect, load_account
from contracts.errors import AccountError, ChainUnavailableError, RevertError
from contracts.revert import RevertDecoder

KEY = HexStr("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address
PASSWORD = "correct horse battery staple"


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    """Neither the message nor the printed traceback shows any of `secrets`."""
    shown = "".join(traceback.format_exception(error)) + repr(error) + str(error)
    for secret in secrets:
        for form in {secret, secret.removeprefix("0x"), secret.lower(), secret.upper()}:
            assert form not in shown


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    path = tmp_path / "key.json"
    # pbkdf2 with few rounds keeps the test fast; the format is the same as scrypt's.
    path.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=16)))
    return path


# ---------------------------------------------------------------- load_account


@pytest.mark.parametrize("key", [KEY, KEY.removeprefix("0x")])
def test_loads_account_from_private_key_variable(key: str) -> None:
    assert load_account(environ={"ENCLAVA_PRIVATE_KEY": key}).address == ADDRESS


def test_loads_account_from_keystore_with_password_variable(keystore: Path) -> None:
    account = load_account(keystore=keystore, environ={"ENCLAVA_KEYSTORE_PASSWORD": PASSWORD})
    assert account.address == ADDRESS


def test_keystore_takes_precedence_over_private_key_variable(keystore: Path) -> None:
    other = "0x" + "11" * 32
    environ = {"ENCLAVA_KEYSTORE_PASSWORD": PASSWORD, "ENCLAVA_PRIVATE_KEY": other}
    assert load_account(keystore=keystore, environ=environ).address == ADDRESS


@pytest.mark.parametrize(
    "key",
    [
        "",
        "0x" + "zz" * 32,  # not hex
        KEY[:-2],  # 31 bytes
        KEY + "00",  # 33 bytes
        "0x" + "00" * 32,  # zero scalar
        "0x" + "ff" * 32,  # above the curve order
        " " + KEY,
    ],
    ids=["empty", "not-hex", "short", "long", "zero", "above-order", "padded"],
)
def test_invalid_private_key_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(AccountError) as refused:
        load_account(environ={"ENCLAVA_PRIVATE_KEY": key})
    assert refused.value.code == "account_unavailable"
    assert isinstance(refused.value, ValueError)
    if key.strip():
        assert_no_secret(refused.value, key.strip())


def test_missing_key_says_how_to_configure_one() -> None:
    with pytest.raises(AccountError, match="ENCLAVA_PRIVATE_KEY"):
        load_account(environ={})


def test_keystore_without_password_variable_is_refused(keystore: Path) -> None:
    with pytest.raises(AccountError, match="ENCLAVA_KEYSTORE_PASSWORD"):
        load_account(keystore=keystore, environ={"ENCLAVA_PRIVATE_KEY": KEY})


def test_wrong_keystore_password_is_refused_without_echoing_secrets(keystore: Path) -> None:
    wrong = "tr0ub4dor&3"
    with pytest.raises(AccountError) as refused:
        load_account(keystore=keystore, environ={"ENCLAVA_KEYSTORE_PASSWORD": wrong})
    assert str(keystore) in refused.value.message
    assert_no_secret(refused.value, KEY, wrong, PASSWORD)


def broken_keystore(case: str) -> str | bytes | None:
    """The content of a keystore file broken in way `case` (None: no file at all)."""
    valid = Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=16)
    crypto = valid["crypto"]
    return {
        "missing": None,
        "not-json": "{not json",
        "binary": b"\xff\xfe\x00",
        "a-list": "[]",
        "empty-object": "{}",
        "bad-mac": json.dumps({**valid, "crypto": {**crypto, "mac": "00" * 32}}),
        "unknown-kdf": json.dumps({**valid, "crypto": {**crypto, "kdf": "rot13"}}),
        "bad-ciphertext": json.dumps({**valid, "crypto": {**crypto, "ciphertext": "zz"}}),
    }[case]


@pytest.mark.parametrize(
    "case",
    ["missing", "not-json", "binary", "a-list", "empty-object", "bad-mac", "unknown-kdf",
     "bad-ciphertext"],
)  # fmt: skip
def test_unreadable_keystore_is_refused_without_echoing_secrets(tmp_path: Path, case: str) -> None:
    path, content = tmp_path / "key.json", broken_keystore(case)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(AccountError) as refused:
        load_account(keystore=path, environ={"ENCLAVA_KEYSTORE_PASSWORD": PASSWORD})
    assert_no_secret(refused.value, KEY, PASSWORD)


# ---------------------------------------------------------------- connect


def test_connect_to_a_closed_port_is_chain_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"  # bound, then released: nothing listens there
    with pytest.raises(ChainUnavailableError) as refused:
        connect(url, timeout=2.0)
    assert url in refused.value.message
    assert refused.value.code == "chain_unavailable"


def test_connect_to_a_node_that_never_answers_is_chain_unavailable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # the kernel accepts the connection; nobody ever replies
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(ChainUnavailableError):
            connect(url, timeout=0.2)


# ---------------------------------------------------------------- RevertDecoder

DECODER = RevertDecoder(
    artifacts.load(name).abi
    for name in ("Agent", "AgentFactory", "WorkerRegistry", "SignedVerdictVerifier")
)
WORKER = "0x" + "ab" * 20
MEASUREMENT = b"\x11" * 32


def error_data(signature: str, types: list[str], values: list[object]) -> bytes:
    return keccak(text=signature)[:4] + encode(types, values)


CUSTOM_ERRORS = [
    ("WrongFee(uint256,uint256)", ["uint256", "uint256"], [10**15, 7]),
    ("WrongMeasurement(address,bytes32)", ["address", "bytes32"], [WORKER, MEASUREMENT]),
    ("RegistrationExpired(address,uint64)", ["address", "uint64"], [WORKER, 2**64 - 1]),
    ("RequestMismatch(uint256)", ["uint256"], [2**256 - 1]),
    ("StaleRegistration(uint64)", ["uint64"], [1_800_000_000]),
    ("RoyaltyTooHigh(uint16)", ["uint16"], [10_001]),
    ("UnknownSigner(address)", ["address"], [WORKER]),
    ("NotOwner()", [], []),
]


@pytest.mark.parametrize(("signature", "types", "values"), CUSTOM_ERRORS)
def test_decodes_custom_errors_with_their_arguments(
    signature: str, types: list[str], values: list[object]
) -> None:
    data = error_data(signature, types, values)
    for form in (data, "0x" + data.hex()):
        error = DECODER.decode(form)
        assert error.error_name == signature.split("(")[0]
        assert error.args_decoded == tuple(values)


def test_decodes_error_string() -> None:
    error = DECODER.decode(error_data("Error(string)", ["string"], ["not enough ✓"]))
    assert (error.error_name, error.args_decoded) == ("Error", ("not enough ✓",))


@pytest.mark.parametrize("code", [0x01, 0x11, 0x12, 0x32])
def test_decodes_panic_code(code: int) -> None:
    error = DECODER.decode(error_data("Panic(uint256)", ["uint256"], [code]))
    assert (error.error_name, error.args_decoded) == ("Panic", (code,))


def test_unknown_selector_keeps_the_data_in_the_message() -> None:
    data = bytes.fromhex("deadbeef") + b"\x00" * 32
    error = DECODER.decode(data)
    assert (error.error_name, error.args_decoded) == ("", ())
    assert data.hex() in error.message


@pytest.mark.parametrize("data", [None, b"", "0x", b"\x08\xc3"], ids=repr)
def test_empty_or_short_data_is_a_bare_revert(data: bytes | str | None) -> None:
    error = DECODER.decode(data)
    assert (error.error_name, error.args_decoded) == ("", ())


@pytest.mark.parametrize(
    "data",
    [
        error_data("WrongFee(uint256,uint256)", ["uint256", "uint256"], [1, 2])[:40],
        error_data("Panic(uint256)", ["uint256"], [0x11])[:5],
        error_data("Error(string)", ["string"], ["reason"])[:40],
        keccak(text="Error(string)")[:4] + encode(["uint256"], [2**255]),  # offset out of range
        keccak(text="UnknownSigner(address)")[:4] + b"\xff" * 32,  # address with dirty padding
    ],
    ids=["custom-truncated", "panic-truncated", "string-truncated", "bad-offset", "dirty"],
)
def test_malformed_data_is_an_undecodable_revert(data: bytes) -> None:
    error = DECODER.decode(data)
    assert (error.error_name, error.args_decoded) == ("", ())
    assert "undecodable" in error.message


def test_error_string_that_is_not_utf8_is_an_undecodable_revert() -> None:
    body = encode(["uint256", "uint256"], [32, 2]) + b"\xff\xfe" + b"\x00" * 30
    error = DECODER.decode(keccak(text="Error(string)")[:4] + body)
    assert isinstance(error, RevertError)
    assert error.error_name == ""


@pytest.mark.parametrize("data", ["0x08c379a", "0xnothex"])
def test_malformed_hex_string_is_an_undecodable_revert(data: str) -> None:
    assert DECODER.decode(data).error_name == ""


SELECTORS = [keccak(text=s)[:4] for s, _, _ in CUSTOM_ERRORS] + [keccak(text="Panic(uint256)")[:4]]


@given(
    selector=st.sampled_from(SELECTORS) | st.binary(min_size=0, max_size=4),
    body=st.binary(max_size=200),
)
def test_decode_never_raises(selector: bytes, body: bytes) -> None:
    assert isinstance(DECODER.decode(selector + body), RevertError)
