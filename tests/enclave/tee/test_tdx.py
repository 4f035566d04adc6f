"""`LinuxTdx` over a fake configfs-tsm and tdx_guest sysfs (see `fakes.FakeDevices`)."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from attestation.eventlog import RuntimeEvent, agent_event, replay
from attestation.quote import parse_quote
from enclave.errors import TeeProtocolError, TeeUnavailableError
from enclave.keys import EnclaveKeys
from enclave.tee.base import TeeBackend
from enclave.tee.tdx import LinuxTdx
from tests.enclave.tee.fakes import TDX_QUOTE, FakeDevices, quoted_rtmr3, sgx_quote, td_quote

REPORT_DATA = bytes(range(64))


def backend(devices: FakeDevices, events: tuple[RuntimeEvent, ...] = ()) -> LinuxTdx:
    return LinuxTdx(devices.report_root, devices.measurements, events=events, files=devices)


def test_quote_binds_report_data_and_removes_its_entry(devices: FakeDevices) -> None:
    tdx = backend(devices)
    quote = tdx.quote(REPORT_DATA)
    parsed = parse_quote(quote)
    assert parsed.tee == "tdx"
    assert parsed.report.report_data == REPORT_DATA
    assert devices.entries() == []
    assert len(devices.removed) == 2  # the probe at construction, then the quote


def test_is_a_tee_backend_of_kind_tdx(devices: FakeDevices) -> None:
    tdx = backend(devices)
    assert isinstance(tdx, TeeBackend)
    assert tdx.kind == "tdx"


def test_each_quote_uses_a_fresh_entry(devices: FakeDevices) -> None:
    tdx = backend(devices)
    tdx.quote(REPORT_DATA)
    tdx.quote(REPORT_DATA)
    assert len(set(devices.removed)) == 3


def test_rejects_a_report_raced_by_another_writer(devices: FakeDevices) -> None:
    tdx = backend(devices)
    devices.racer = True
    with pytest.raises(TeeProtocolError, match="generation went from 0 to 2"):
        tdx.quote(REPORT_DATA)
    assert devices.entries() == []


@pytest.mark.parametrize("outblob", [b"", TDX_QUOTE[:47], TDX_QUOTE[:600]])
def test_rejects_a_short_outblob(devices: FakeDevices, outblob: bytes) -> None:
    tdx = backend(devices)
    devices.outblob = outblob
    with pytest.raises(TeeProtocolError, match="outblob"):
        tdx.quote(REPORT_DATA)
    assert devices.entries() == []


def test_rejects_a_quote_over_other_report_data(devices: FakeDevices) -> None:
    tdx = backend(devices)
    devices.outblob = td_quote(bytes(64))
    with pytest.raises(TeeProtocolError, match="other REPORTDATA"):
        tdx.quote(REPORT_DATA)


def test_rejects_an_sgx_quote(devices: FakeDevices) -> None:
    tdx = backend(devices)
    devices.outblob = sgx_quote(REPORT_DATA)
    with pytest.raises(TeeProtocolError, match="sgx quote, expected tdx"):
        tdx.quote(REPORT_DATA)


@pytest.mark.parametrize("report_data", [b"", bytes(32), bytes(65), bytearray(64), "x" * 64])
def test_rejects_report_data_that_is_not_64_bytes(devices: FakeDevices, report_data: bytes) -> None:
    tdx = backend(devices)
    with pytest.raises(ValueError, match="64 bytes"):
        tdx.quote(report_data)
    assert len(devices.removed) == 1


def test_absent_configfs_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TeeUnavailableError, match="configfs-tsm is not mounted"):
        LinuxTdx(tmp_path / "nope", tmp_path / "measurements")


def test_other_provider_is_unavailable(tmp_path: Path) -> None:
    devices = FakeDevices(tmp_path, tdx_provider="sev_guest")
    with pytest.raises(TeeUnavailableError, match="'sev_guest', not TDX"):
        backend(devices)
    assert devices.entries() == []


def test_no_registered_provider_is_unavailable(devices: FakeDevices) -> None:
    devices.mkdir_errno = errno.ENXIO
    with pytest.raises(TeeUnavailableError, match="no TSM provider"):
        backend(devices)


def test_other_mkdir_failure_is_a_protocol_error(devices: FakeDevices) -> None:
    tdx = backend(devices)
    devices.mkdir_errno = errno.EACCES
    with pytest.raises(TeeProtocolError, match="cannot create"):
        tdx.quote(REPORT_DATA)


@pytest.mark.parametrize("attribute", ["provider", "generation", "outblob", "inblob"])
def test_missing_attribute_is_a_protocol_error(devices: FakeDevices, attribute: str) -> None:
    devices.missing = {attribute}
    with pytest.raises(TeeProtocolError, match=attribute):
        backend(devices).quote(REPORT_DATA)
    assert devices.entries() == []


def test_malformed_generation_is_a_protocol_error(devices: FakeDevices) -> None:
    tdx = backend(devices)
    devices.missing = {"generation"}
    original = devices.mkdir

    def mkdir_with_bad_generation(path: Path) -> None:
        original(path)
        (path / "generation").write_text("many\n")

    devices.mkdir = mkdir_with_bad_generation  # type: ignore[method-assign]
    with pytest.raises(TeeProtocolError, match="not a count"):
        tdx.quote(REPORT_DATA)


def bundle_event(name: str = "embedder") -> RuntimeEvent:
    return agent_event(name, "1.0", hashlib.sha384(name.encode()).digest())


def test_extends_rtmr3_and_logs_the_event(devices: FakeDevices) -> None:
    tdx = backend(devices)
    first, second = bundle_event("a"), bundle_event("b")
    tdx.extend_rtmr(first)
    tdx.extend_rtmr(second)
    assert tdx.event_log() == (first, second)
    assert devices.rtmr3 == replay(tdx.event_log())[3]
    assert quoted_rtmr3(tdx.quote(REPORT_DATA)) == replay(tdx.event_log())[3]


def test_restored_log_is_kept_in_order(devices: FakeDevices) -> None:
    earlier = bundle_event("earlier")
    tdx = backend(devices, events=(earlier,))
    tdx.extend_rtmr(bundle_event("later"))
    assert [e.event for e in tdx.event_log()] == ["enclava.agent", "enclava.agent"]
    assert tdx.event_log()[0] is earlier


@pytest.mark.parametrize(
    ("event", "match"),
    [
        (RuntimeEvent.create("x", b"payload", imr=2), "not RTMR2"),
        (RuntimeEvent(3, 0x08000001, bytes(48), "x", b"payload"), "digest does not match"),
        (RuntimeEvent(3, 0x80000001, bytes(48), "x", b""), "only named runtime events"),
        (RuntimeEvent.create("", b"payload"), "only named runtime events"),
    ],
    ids=["rtmr2", "wrong-digest", "boot-event-type", "unnamed"],
)
def test_rejects_events_that_are_not_rtmr3_runtime_events(
    devices: FakeDevices, event: RuntimeEvent, match: str
) -> None:
    tdx = backend(devices)
    with pytest.raises(ValueError, match=match):
        tdx.extend_rtmr(event)
    assert tdx.event_log() == ()
    assert devices.rtmr3 == bytes(48)


def test_missing_measurement_register_is_unavailable(devices: FakeDevices) -> None:
    (devices.measurements / "rtmr3:sha384").unlink()
    tdx = backend(devices)
    with pytest.raises(TeeUnavailableError, match=r"Linux >= 6\.16"):
        tdx.extend_rtmr(bundle_event())
    assert tdx.event_log() == ()


def test_register_extended_by_another_writer_is_a_protocol_error(devices: FakeDevices) -> None:
    tdx = backend(devices)
    devices.stray_digest = hashlib.sha384(b"someone else").digest()
    event = bundle_event()
    with pytest.raises(TeeProtocolError, match="not the extension"):
        tdx.extend_rtmr(event)
    assert tdx.event_log() == (event,)


def test_register_of_wrong_size_is_a_protocol_error(devices: FakeDevices) -> None:
    (devices.measurements / "rtmr3:sha384").write_bytes(bytes(32))
    with pytest.raises(TeeProtocolError, match="32 bytes"):
        backend(devices).extend_rtmr(bundle_event())


def test_has_no_sealing_key(devices: FakeDevices) -> None:
    with pytest.raises(TeeUnavailableError, match="KMS"):
        backend(devices).sealing_key("identity")


def test_without_a_sealing_key_worker_keys_live_for_one_boot(
    devices: FakeDevices, tmp_path: Path
) -> None:
    path = tmp_path / "keys.sealed.json"
    first = EnclaveKeys.load_or_create(backend(devices), path)
    second = EnclaveKeys.load_or_create(backend(devices), path)
    assert first.address != second.address  # fresh each boot: registered again after restart
    assert not path.exists()  # nothing written without a key to seal it with
