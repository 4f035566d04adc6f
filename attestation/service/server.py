"""Running the service: uvicorn (httptools + uvloop where installed), one or more processes.

`serve(settings, app_factory)` binds `settings.host:settings.port` and serves the app that
`app_factory()` builds. With `settings.workers > 1` the listening socket is bound once and
the process forks that many workers (Linux `fork`: the factory, and everything it closes over
such as keys or a TEE backend, reaches the workers without pickling); each worker builds its
own app (its own verifier caches, collateral memory and metrics registry).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import multiprocessing
import signal
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from attestation.service.keys import ServiceKeys
from attestation.service.settings import ServiceSettings

__all__ = ["load_keys", "serve", "uvicorn_options"]

log = logging.getLogger(__name__)


def uvicorn_options(settings: ServiceSettings, *, access_log: bool = False) -> dict[str, Any]:
    """Fast protocol implementations when installed (`uvicorn[standard]`); an access log only
    when asked (a line per verify costs throughput). Uvicorn leaves logging alone: its loggers
    propagate to the root logger, which the caller configures (`enclava attest serve` does, as
    text or JSON); unconfigured, only warnings and errors come out."""
    has = importlib.util.find_spec
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop" if has("uvloop") else "asyncio",
        "http": "httptools" if has("httptools") else "h11",
        "lifespan": "on",
        "access_log": access_log,
        "server_header": False,
        "log_config": None,
        "log_level": None,
        "backlog": 2048,
    }


def load_keys(settings: ServiceSettings) -> ServiceKeys:
    """The key file's keys; in dev without a key file, fresh keys (with a warning)."""
    if settings.key_file is not None:
        return ServiceKeys.load(settings.key_file)
    if settings.dev:
        log.warning("no key_file: using ephemeral signing keys (dev only; they die with us)")
        return ServiceKeys.generate()
    raise ValueError("set key_file (ENCLAVA_ATTEST_KEY_FILE): the service needs signing keys")


def _run(app_factory: Callable[[], FastAPI], options: dict[str, Any], sock: Any = None) -> None:
    app = app_factory()
    # Everything built so far lives as long as the process: keep it out of the collector's
    # scans, so a full collection does not stall requests for tens of milliseconds.
    gc.collect()
    gc.freeze()
    uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=None if sock is None else [sock])


def serve(
    settings: ServiceSettings, app_factory: Callable[[], FastAPI], *, access_log: bool = False
) -> None:
    """Serve until interrupted (SIGINT / SIGTERM); `access_log`: a log line per request."""
    options = uvicorn_options(settings, access_log=access_log)
    if settings.workers == 1:
        _run(app_factory, options)
        return
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(options["backlog"])
    sock.set_inheritable(True)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_run, args=(app_factory, options, sock), daemon=False)
        for _ in range(settings.workers)
    ]
    for process in workers:
        process.start()

    def stop(signum: int, frame: object) -> None:
        for process in workers:
            if process.is_alive():
                process.terminate()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in workers:
            process.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
