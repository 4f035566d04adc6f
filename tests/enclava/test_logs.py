"""Structured logs: the JSON formatter, request ids from the `X-Request-ID` header to the log
records and back in the response, uvicorn's access lines in JSON, and no secret in any of it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from agents.runtime import AgentRuntime
from attestation.service import ServiceKeys, ServiceSettings, create_app
from attestation.service.request_id import RequestIdMiddleware, accept_request_id
from enclava.devstack import serve_in_thread
from enclava.logs import (
    JsonFormatter,
    LogFormat,
    LogLevel,
    adopt_uvicorn_loggers,
    configure_logging,
)
from enclave.gateway import ServedAgent
from enclave.gateway_client import GatewayClient
from tests.enclave.conftest import SUM_BUNDLE, start_worker
from tests.samples import SAMPLES

SECRET = "s3cret-marker-7f1c"
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _record(message: str, *args: object, **extra: Any) -> logging.LogRecord:
    return logging.getLogger("enclave.test").makeRecord(
        "enclave.test", logging.INFO, __file__, 1, message, args, None, extra=extra
    )


def test_json_formatter_writes_one_object_with_the_fields() -> None:
    record = _record("fulfilled %d", 7, agent="sum", tx_hash="0xab", chain_request_id=7)
    line = JsonFormatter(request_id=lambda: "req-1").format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "fulfilled 7" and doc["level"] == "info"
    assert doc["logger"] == "enclave.test" and doc["request_id"] == "req-1"
    assert (doc["agent"], doc["tx_hash"], doc["chain_request_id"]) == ("sum", "0xab", 7)
    assert doc["ts"].endswith("Z")
    ts = datetime.fromisoformat(doc["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert abs(ts.timestamp() - record.created) < 0.001
    assert not {"args", "msg", "levelno", "pathname", "exc"} & set(doc)


def test_json_formatter_omits_an_unset_request_id_and_keeps_exceptions_in_one_field() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )
    line = JsonFormatter(request_id=lambda: None).format(record)
    doc = json.loads(line)
    assert "request_id" not in doc and doc["level"] == "error"
    assert "ZeroDivisionError" in doc["exc"] and "Traceback" in doc["exc"]
    assert line.count("\n") == 0  # the traceback's newlines are escaped inside the string


def test_json_formatter_writes_values_json_cannot_hold_as_text() -> None:
    doc = json.loads(JsonFormatter().format(_record("m", path=Path("/tmp/x"))))
    assert doc["path"] == "/tmp/x"


@pytest.mark.parametrize("offered", ["abc", "A.b_c-9", "x" * 64])
def test_a_sane_request_id_is_kept(offered: str) -> None:
    assert accept_request_id(offered) == offered


@pytest.mark.parametrize(
    "offered", [None, "", "x" * 65, "a b", 'a"}{', "line\nbreak", "ünïcode", "a/b", "a;b"]
)
def test_anything_else_is_replaced_by_a_fresh_id(offered: str | None) -> None:
    replaced = accept_request_id(offered)
    assert replaced != offered and len(replaced) == 32 and int(replaced, 16) >= 0
    assert accept_request_id(offered) != replaced  # fresh each time


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON logs of everything at DEBUG into a buffer, as `configure_logging` sets them up; the
    root and uvicorn loggers are restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    uvicorn_saved = {
        n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in _UVICORN
    }
    buffer = io.StringIO()
    configure_logging(LogFormat.JSON, LogLevel.DEBUG, stream=buffer)
    yield buffer
    root.handlers[:], root.level = saved
    for name, (handlers, propagate) in uvicorn_saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate = handlers, propagate


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def _logging_app() -> FastAPI:
    app = FastAPI()
    log = logging.getLogger("tests.request_id")

    def in_a_thread() -> None:
        log.info("from the thread pool")

    @app.get("/work")
    async def work() -> dict[str, str]:
        log.info("in the endpoint")
        await run_in_threadpool(in_a_thread)
        return {}

    app.add_middleware(RequestIdMiddleware)
    return app


def test_the_request_id_reaches_the_logs_and_the_response(captured: io.StringIO) -> None:
    transport = httpx.ASGITransport(app=_logging_app())

    async def get(headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/work", headers=headers)

    kept = asyncio.run(get({"X-Request-ID": "trace-42"}))
    replaced = asyncio.run(get({"X-Request-ID": "bad id\r\nX-Evil: 1"}))
    made = asyncio.run(get({}))
    assert kept.headers["x-request-id"] == "trace-42"
    fresh = {replaced.headers["x-request-id"], made.headers["x-request-id"]}
    assert len(fresh) == 2 and all(len(i) == 32 for i in fresh)
    ours = [d for d in _lines(captured) if d["logger"] == "tests.request_id"]
    expected = [r.headers["x-request-id"] for r in (kept, replaced, made)]
    assert [d["request_id"] for d in ours[::2]] == expected  # in the endpoint
    assert [d["request_id"] for d in ours[1::2]] == expected  # in the thread pool
    assert "evil" not in captured.getvalue().lower()


def test_the_attestation_service_echoes_the_request_id() -> None:
    settings = ServiceSettings(
        collateral_mode="offline", offline_dir=SAMPLES, cache_dir=None, refresh_interval_seconds=0
    )
    app = create_app(settings, signing=ServiceKeys.generate())

    async def get(path: str, request_id: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.get(path, headers={"X-Request-ID": request_id})

    assert asyncio.run(get("/healthz", "svc.1")).headers["x-request-id"] == "svc.1"
    missing = asyncio.run(get("/no/such/path", "svc.2"))  # error answers carry it too
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "svc.2"


@pytest.fixture(scope="module")
def sum_runtime() -> Iterator[AgentRuntime]:
    with AgentRuntime.load(SUM_BUNDLE) as runtime:
        yield runtime


def test_gateway_access_lines_are_json_with_the_request_id_and_no_secret(
    captured: io.StringIO, sum_runtime: AgentRuntime
) -> None:
    agents: dict[str, ServedAgent] = {"sum": sum_runtime}
    worker = start_worker(agents)
    with serve_in_thread(worker.app, lifespan="off") as url:
        adopt_uvicorn_loggers()  # as `enclava worker run --gateway-port` does after starting it
        with httpx.Client(base_url=url) as http:
            plain = http.post(
                "/v1/agents/sum/invoke",
                json={"values": [1, 2], "note": SECRET},
                headers={"X-Request-ID": "gw-plain"},
            )
            refused = http.post(
                "/v1/agents/sum/invoke",
                json={"values": [1], SECRET: SECRET},
                headers={"X-Request-ID": "bad id"},
            )
        with GatewayClient(url) as gateway:
            sealed = gateway.invoke(worker.verify(gateway), "sum", {"values": [3], "note": SECRET})
    assert plain.status_code == 200 and SECRET in plain.text
    assert refused.status_code == 422 and sealed.output["note"] == SECRET
    access = [d for d in _lines(captured) if d["logger"] == "uvicorn.access"]
    by_id = {d.get("request_id"): d for d in access}
    assert by_id["gw-plain"]["path"] == "/v1/agents/sum/invoke"
    assert (by_id["gw-plain"]["method"], by_id["gw-plain"]["status"]) == ("POST", 200)
    assert by_id[refused.headers["x-request-id"]]["status"] == 422
    assert refused.headers["x-request-id"] != "bad id"
    text = captured.getvalue()
    assert SECRET not in text
    assert worker.keys._account.key.hex().removeprefix("0x") not in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_attest_serve_logs_json_lines_with_access_and_request_id(tmp_path: Path) -> None:
    port = _free_port()
    enclava = Path(sys.executable).parent / "enclava"
    env = {**os.environ, "ENCLAVA_STATE_DIR": str(tmp_path), "ENCLAVA_LOG_FORMAT": "json"}
    args = ["attest", "serve", "--dev", "--port", str(port), "--workers", "1", "--access-log"]
    process = subprocess.Popen(
        [str(enclava), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while health is None and time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(
                    f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "cli-1"}
                )
            except httpx.HTTPError:
                time.sleep(0.1)  # the server is starting; poll with a deadline
        assert health is not None and health.headers["x-request-id"] == "cli-1"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    lines = [line for line in stderr.decode().splitlines() if line.startswith("{")]
    docs = [json.loads(line) for line in lines]
    assert any(d["logger"] == "uvicorn.error" and "startup" in d["message"] for d in docs)
    access = [d for d in docs if d["logger"] == "uvicorn.access"]
    assert [(d["request_id"], d["path"], d["status"]) for d in access] == [
        ("cli-1", "/healthz", 200)
    ]
