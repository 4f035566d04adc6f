"""`GramineSgx` over a fake Gramine `/dev/attestation` (see `fakes.FakeDevices`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from attestation.eventlog import RuntimeEvent
from attestation.quote import parse_quote
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.tee.base import TeeBackend
from enclave.tee.sgx import GramineSgx
from tests.enclave.tee.fakes import SGX_QUOTE, FakeDevices, td_quote

REPORT_DATA = bytes(range(64, 128))


def backend(devices: FakeDevices) -> GramineSgx:
    return GramineSgx(devices.gramine, files=devices)


def test_quote_binds_report_data(devices: FakeDevices) -> None:
    sgx = backend(devices)
    parsed = parse_quote(sgx.quote(REPORT_DATA))
    assert parsed.tee == "sgx"
    assert parsed.report.report_data == REPORT_DATA
    assert (devices.gramine / "user_report_data").read_bytes() == REPORT_DATA


def test_is_a_tee_backend_of_kind_sgx(devices: FakeDevices) -> None:
    sgx = backend(devices)
    assert isinstance(sgx, TeeBackend)
    assert sgx.kind == "sgx"


@pytest.mark.parametrize("report_data", [b"", bytes(63), bytes(65), "x" * 64])
def test_rejects_report_data_that_is_not_64_bytes(devices: FakeDevices, report_data: bytes) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        backend(devices).quote(report_data)
    assert (devices.gramine / "user_report_data").read_bytes() == bytes(64)


@pytest.mark.parametrize("quote", [b"", SGX_QUOTE[:47], SGX_QUOTE[:400]])
def test_rejects_a_short_quote(devices: FakeDevices, quote: bytes) -> None:
    devices.sgx_quote = quote
    with pytest.raises(TeeProtocolError, match="quote"):
        backend(devices).quote(REPORT_DATA)


def test_rejects_a_quote_over_another_writers_report_data(devices: FakeDevices) -> None:
    devices.intruder = bytes(64)
    with pytest.raises(TeeProtocolError, match="other REPORTDATA"):
        backend(devices).quote(REPORT_DATA)


def test_rejects_a_tdx_quote(devices: FakeDevices) -> None:
    devices.sgx_quote = td_quote(REPORT_DATA)
    with pytest.raises(TeeProtocolError, match="tdx quote, expected sgx"):
        backend(devices).quote(REPORT_DATA)


def test_missing_quote_file_is_a_protocol_error(devices: FakeDevices) -> None:
    sgx = backend(devices)
    (devices.gramine / "quote").unlink()
    with pytest.raises(TeeProtocolError, match="cannot read"):
        sgx.quote(REPORT_DATA)


def test_outside_gramine_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TeeUnavailableError, match="not running in a Gramine SGX enclave"):
        GramineSgx(tmp_path / "attestation")


@pytest.mark.parametrize("kind", ["none", "epid", ""])
def test_attestation_other_than_dcap_is_unavailable(tmp_path: Path, kind: str) -> None:
    devices = FakeDevices(tmp_path, gramine_type=kind)
    with pytest.raises(TeeUnavailableError, match="not 'dcap'"):
        backend(devices)


def test_has_no_rtmrs(devices: FakeDevices) -> None:
    sgx = backend(devices)
    with pytest.raises(TeeUnavailableError, match="MRENCLAVE"):
        sgx.extend_rtmr(RuntimeEvent.create("x", b"y"))
    assert sgx.event_log() == ()


def test_sealing_key_is_hkdf_of_the_mrenclave_key(devices: FakeDevices) -> None:
    sgx = backend(devices)
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"identity").derive(
        bytes(range(16))
    )
    assert sgx.sealing_key("identity") == expected
    assert sgx.sealing_key("identity") == expected
    assert sgx.sealing_key("other") != expected


def test_sealing_key_follows_the_enclave_measurement(tmp_path: Path) -> None:
    one = backend(FakeDevices(tmp_path / "one", seal_key=b"\x01" * 16))
    two = backend(FakeDevices(tmp_path / "two", seal_key=b"\x02" * 16))
    assert one.sealing_key("identity") != two.sealing_key("identity")


@pytest.mark.parametrize("size", [0, 15, 17, 32])
def test_seal_key_of_wrong_size_is_a_protocol_error(tmp_path: Path, size: int) -> None:
    devices = FakeDevices(tmp_path, seal_key=bytes(size))
    with pytest.raises(TeeProtocolError, match=f"holds {size} bytes, not 16"):
        backend(devices).sealing_key("identity")


def test_missing_seal_key_is_unavailable(devices: FakeDevices) -> None:
    (devices.gramine / "keys" / "_sgx_mrenclave").unlink()
    with pytest.raises(TeeUnavailableError, match="_sgx_mrenclave"):
        backend(devices).sealing_key("identity")


def test_sealing_key_needs_a_label(devices: FakeDevices) -> None:
    with pytest.raises(ValueError, match="label"):
        backend(devices).sealing_key("")
