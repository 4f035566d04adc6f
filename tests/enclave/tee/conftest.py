"""Fixtures: fake kernel / Gramine files in a temporary directory, and a fake dstack agent."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.enclave.tee.fakes import FakeDevices, FakeDstackAgent


@pytest.fixture
def devices(tmp_path: Path) -> FakeDevices:
    return FakeDevices(tmp_path)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for Unix sockets (their paths are limited to about 100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="enclava-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def agent(socket_dir: Path) -> Iterator[FakeDstackAgent]:
    fake = FakeDstackAgent(socket_dir / "dstack.sock")
    yield fake
    fake.close()
