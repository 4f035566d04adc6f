"""Shared fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.fake_pcs import pcs

__all__ = ["pcs"]

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process (typer's CliRunner) configure logging as a process would: put the
    root and uvicorn loggers back after each test, so no test sees another's handlers."""
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in _UVICORN_LOGGERS)]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for logger, level, handlers, propagate in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate
