"""Test doubles for the TEE backends' kernel, Gramine and dstack interfaces.

`FakeDevices` lays out configfs-tsm, the tdx_guest measurement registers and Gramine's
`/dev/attestation` in a temporary directory, and adds the effects those file systems have and a
plain directory lacks: mkdir populates a report entry, a write to `inblob` bumps `generation`,
reading `outblob` or `quote` generates a quote over what was written, a write to an RTMR extends
it, rmdir removes a populated entry. The real I/O still goes through `DeviceFiles`.

`FakeDstackAgent` is a real HTTP server on a Unix socket speaking the dstack guest-agent API as
`dstack-sdk` calls it (`POST /GetQuote`, `/EmitEvent`, `/GetKey`, JSON bodies, hex fields). Its
digests follow dstack's rule, written here independently of `attestation.eventlog`.

Quotes are the real samples with REPORTDATA and RTMR3 patched in (signatures no longer verify;
the backends do not check them).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from attestation.quote import parse_quote
from attestation.report import TdReport10
from enclave.tee.device_files import DeviceFiles
from tests.samples import read_quote

TDX_QUOTE = read_quote("dcapqvl_tdx_v4_quote.bin")
SGX_QUOTE = read_quote("dcapqvl_sgx_v3_quote.bin")
_TD_RTMR3 = slice(48 + 472, 48 + 520)
_TD_REPORT_DATA = slice(48 + 520, 48 + 584)
_SGX_REPORT_DATA = slice(48 + 320, 48 + 384)
RUNTIME = 0x08000001


def td_quote(report_data: bytes, rtmr3: bytes = bytes(48)) -> bytes:
    quote = bytearray(TDX_QUOTE)
    quote[_TD_REPORT_DATA] = report_data
    quote[_TD_RTMR3] = rtmr3
    return bytes(quote)


def sgx_quote(report_data: bytes) -> bytes:
    quote = bytearray(SGX_QUOTE)
    quote[_SGX_REPORT_DATA] = report_data
    return bytes(quote)


def quoted_rtmr3(quote: bytes) -> bytes:
    report = parse_quote(quote).report
    assert isinstance(report, TdReport10)
    return report.rtmrs[3]


def sha384_extend(register: bytes, digest: bytes) -> bytes:
    return hashlib.sha384(register + digest).digest()


def dstack_digest(name: str, payload: bytes) -> bytes:
    return hashlib.sha384(RUNTIME.to_bytes(4, "little") + f":{name}:".encode() + payload).digest()


def _einval(path: Path) -> OSError:
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))


class FakeDevices(DeviceFiles):
    """configfs-tsm (provider `tdx_provider`, None: not mounted), tdx_guest measurements and
    Gramine's attestation files (type `gramine_type`, None: not in Gramine) under `base`.

    Knobs a test turns: `outblob` / `sgx_quote` (answer this instead), `racer` (another writer
    bumps `generation` while we read), `intruder` (another thread's REPORTDATA lands in
    `user_report_data` before the quote), `stray_digest` (another process extends RTMR3 too),
    `missing` (attributes mkdir does not create), `mkdir_errno`."""

    def __init__(
        self,
        base: Path,
        *,
        tdx_provider: str | None = "tdx_guest",
        gramine_type: str | None = "dcap",
        seal_key: bytes = bytes(range(16)),
    ) -> None:
        self.report_root = base / "config" / "tsm" / "report"
        self.measurements = base / "tdx_guest" / "measurements"
        self.gramine = base / "attestation"
        self.tdx_provider = tdx_provider
        self.outblob: bytes | None = None
        self.sgx_quote: bytes | None = None
        self.racer = False
        self.intruder: bytes | None = None
        self.stray_digest: bytes | None = None
        self.missing: set[str] = set()
        self.mkdir_errno: int | None = None
        self.removed: list[Path] = []
        if tdx_provider is not None:
            self.report_root.mkdir(parents=True)
            self.measurements.mkdir(parents=True)
            for index in range(4):
                (self.measurements / f"rtmr{index}:sha384").write_bytes(bytes(48))
        if gramine_type is not None:
            (self.gramine / "keys").mkdir(parents=True)
            (self.gramine / "attestation_type").write_text(gramine_type)
            (self.gramine / "user_report_data").write_bytes(bytes(64))
            (self.gramine / "quote").write_bytes(b"")
            (self.gramine / "keys" / "_sgx_mrenclave").write_bytes(seal_key)

    @property
    def rtmr3(self) -> bytes:
        return (self.measurements / "rtmr3:sha384").read_bytes()

    def entries(self) -> list[Path]:
        return sorted(self.report_root.iterdir())

    def mkdir(self, path: Path) -> None:
        if self.mkdir_errno is not None:
            raise OSError(self.mkdir_errno, os.strerror(self.mkdir_errno), str(path))
        super().mkdir(path)
        if path.parent == self.report_root:
            attributes = {
                "provider": f"{self.tdx_provider}\n".encode(),
                "generation": b"0\n",
                "inblob": b"",
                "outblob": b"",
                "auxblob": b"",
            }
            for name, value in attributes.items():
                if name not in self.missing:
                    (path / name).write_bytes(value)

    def rmdir(self, path: Path) -> None:
        if path.parent == self.report_root:
            for attribute in path.iterdir():
                attribute.unlink()
        super().rmdir(path)
        self.removed.append(path)

    def write(self, path: Path, data: bytes) -> None:
        if path.parent.parent == self.report_root and path.name == "inblob":
            if len(data) != 64:
                raise _einval(path)
            super().write(path, data)
            self._bump(path.parent)
        elif path.parent == self.measurements:
            if len(data) != 48:
                raise _einval(path)
            value = sha384_extend(path.read_bytes(), data)
            super().write(path, data)
            if self.stray_digest is not None:
                value = sha384_extend(value, self.stray_digest)
            path.write_bytes(value)
        elif path == self.gramine / "user_report_data":
            if len(data) != 64:
                raise _einval(path)
            super().write(path, data)
        else:
            super().write(path, data)

    def read(self, path: Path) -> bytes:
        if path.parent.parent == self.report_root and path.name == "outblob" and path.exists():
            inblob = (path.parent / "inblob").read_bytes()
            path.write_bytes(
                self.outblob if self.outblob is not None else td_quote(inblob, self.rtmr3)
            )
            if self.racer:
                self._bump(path.parent)
        elif path == self.gramine / "quote" and path.exists():
            if self.intruder is not None:
                (self.gramine / "user_report_data").write_bytes(self.intruder)
            report_data = (self.gramine / "user_report_data").read_bytes()
            answer = self.sgx_quote if self.sgx_quote is not None else sgx_quote(report_data)
            path.write_bytes(answer)
        return super().read(path)

    @staticmethod
    def _bump(entry: Path) -> None:
        generation = int((entry / "generation").read_text())
        (entry / "generation").write_text(f"{generation + 1}\n")


def boot_events() -> list[dict[str, Any]]:
    """What a dstack CVM's log holds before the app runs: a boot-time RTMR0 event (not a runtime
    event) and dstack's own RTMR3 runtime events."""
    log: list[dict[str, Any]] = [
        {
            "imr": 0,
            "event_type": 0x80000001,
            "digest": hashlib.sha384(b"firmware config").hexdigest(),
            "event": "",
            "event_payload": "",
        }
    ]
    for name, payload in (("app-id", bytes(20)), ("compose-hash", bytes(range(32)))):
        log.append(runtime_entry(name, payload))
    return log


def runtime_entry(name: str, payload: bytes) -> dict[str, Any]:
    return {
        "imr": 3,
        "event_type": RUNTIME,
        "digest": dstack_digest(name, payload).hex(),
        "event": name,
        "event_payload": payload.hex(),
    }


class FakeDstackAgent:
    """The dstack guest agent on Unix socket `path`, serving until `close()`.

    `requests` records `(method, body)`; `answers[method] = (status, body)` replaces an answer;
    `events` is the agent's log (JSON entries); `tamper` rewrites a GetQuote answer's JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, tuple[int, bytes]] = {}
        self.events = boot_events()
        self.tamper: dict[str, Any] = {}
        self.key_secret = b"app key material"
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                method = self.path.lstrip("/")
                agent.requests.append((method, body))
                status, payload = agent.answer(method, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def rtmr3(self) -> bytes:
        register = bytes(48)
        for entry in self.events:
            if entry["imr"] == 3:
                register = sha384_extend(register, bytes.fromhex(entry["digest"]))
        return register

    def answer(self, method: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if method in self.answers:
            return self.answers[method]
        if method == "GetQuote":
            report_data = bytes.fromhex(body["report_data"])
            doc = {
                "quote": td_quote(report_data, self.rtmr3()).hex(),
                "event_log": json.dumps(self.events),
                "report_data": body["report_data"],
                "vm_config": "{}",
            }
            return 200, json.dumps(doc | self.tamper).encode()
        if method == "EmitEvent":
            self.events.append(runtime_entry(body["event"], bytes.fromhex(body["payload"])))
            return 200, b"{}"
        if method == "GetKey":
            key = hmac.new(self.key_secret, body["path"].encode(), hashlib.sha256).digest()
            return 200, json.dumps({"key": key.hex(), "signature_chain": []}).encode()
        return 404, b'{"error": "no such method"}'
