"""`detect`: the order dstack → TDX → Gramine SGX → simulator, and explicit choices."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from attestation.eventlog import RuntimeEvent
from enclave.errors import TeeUnavailableError
from enclave.tee.base import TeeBackend
from enclave.tee.detect import detect
from enclave.tee.dstack import DstackTdx
from enclave.tee.sgx import GramineSgx
from enclave.tee.tdx import LinuxTdx
from tests.enclave.tee.fakes import FakeDevices, FakeDstackAgent


class StubSimulator:
    kind = "simulated"

    def quote(self, report_data: bytes) -> bytes:
        raise NotImplementedError

    def extend_rtmr(self, event: RuntimeEvent) -> None:
        raise NotImplementedError

    def event_log(self) -> tuple[RuntimeEvent, ...]:
        return ()

    def sealing_key(self, label: str) -> bytes:
        raise NotImplementedError


STUB = StubSimulator()


def machine(
    devices: FakeDevices, sockets: tuple[Path, ...] = (), **overrides: Any
) -> dict[str, Any]:
    """detect()'s keyword arguments for a machine laid out by `devices` and `sockets`."""
    return {
        "sim_factory": lambda: STUB,
        "dstack_sockets": sockets,
        "tsm_report_root": devices.report_root,
        "tdx_measurements": devices.measurements,
        "gramine_root": devices.gramine,
        "files": devices,
    } | overrides


def bare(tmp_path: Path) -> FakeDevices:
    return FakeDevices(tmp_path, tdx_provider=None, gramine_type=None)


def test_dstack_socket_comes_first(devices: FakeDevices, agent: FakeDstackAgent) -> None:
    absent = agent.path.with_name("absent.sock")
    assert isinstance(detect(**machine(devices, (absent, agent.path))), DstackTdx)


def test_socket_path_that_is_no_socket_is_not_dstack(devices: FakeDevices, tmp_path: Path) -> None:
    not_a_socket = tmp_path / "dstack.sock"
    not_a_socket.write_bytes(b"")
    assert isinstance(detect(**machine(devices, (not_a_socket,))), LinuxTdx)


def test_tdx_comes_before_gramine(devices: FakeDevices) -> None:
    assert isinstance(detect(**machine(devices)), LinuxTdx)


def test_configfs_with_another_provider_is_skipped(tmp_path: Path) -> None:
    devices = FakeDevices(tmp_path, tdx_provider="sev_guest")
    assert isinstance(detect(**machine(devices)), GramineSgx)


def test_falls_back_to_the_simulator_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="enclave.tee.detect"):
        assert detect(**machine(bare(tmp_path))) is STUB
    assert "SIMULATED" in caplog.text
    for reason in ("dstack:", "tdx:", "sgx:"):
        assert reason in caplog.text


def test_gramine_without_dcap_falls_back_to_the_simulator(tmp_path: Path) -> None:
    devices = FakeDevices(tmp_path, tdx_provider=None, gramine_type="none")
    assert detect(**machine(devices)) is STUB


def test_prefer_sim_skips_present_tees(devices: FakeDevices, agent: FakeDstackAgent) -> None:
    assert detect(prefer="sim", **machine(devices, (agent.path,))) is STUB


@pytest.mark.parametrize(
    ("prefer", "backend"), [("tdx", LinuxTdx), ("sgx", GramineSgx), ("dstack", DstackTdx)]
)
def test_prefer_picks_that_backend(
    devices: FakeDevices, agent: FakeDstackAgent, prefer: str, backend: type[TeeBackend]
) -> None:
    assert isinstance(detect(prefer=prefer, **machine(devices, (agent.path,))), backend)


@pytest.mark.parametrize(
    ("prefer", "missing"),
    [
        ("dstack", "no dstack guest-agent socket at .*absent.sock"),
        ("tdx", "report does not exist"),
        ("sgx", "attestation_type is unreadable"),
    ],
)
def test_preferred_backend_that_is_absent_is_unavailable(
    tmp_path: Path, prefer: str, missing: str
) -> None:
    kwargs = machine(bare(tmp_path), (tmp_path / "absent.sock",))
    with pytest.raises(TeeUnavailableError, match=missing):
        detect(prefer=prefer, **kwargs)


def test_preferred_sgx_without_dcap_is_unavailable(tmp_path: Path) -> None:
    devices = FakeDevices(tmp_path, gramine_type="epid")
    with pytest.raises(TeeUnavailableError, match="'epid'"):
        detect(prefer="sgx", **machine(devices))


def test_unknown_backend_name_is_a_value_error(devices: FakeDevices) -> None:
    with pytest.raises(ValueError, match="unknown TEE backend 'sev'"):
        detect(prefer="sev", **machine(devices))


def test_default_simulator_is_the_simulated_tdx(tmp_path: Path) -> None:
    kwargs = machine(bare(tmp_path))
    del kwargs["sim_factory"]
    sim = detect(prefer="sim", **kwargs)
    assert sim.kind == "simulated"
    assert isinstance(sim, TeeBackend)
