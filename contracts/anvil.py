"""A real Anvil node on 127.0.0.1, started and stopped by the caller (tests, `enclava dev`).

The binary comes from the npm package `@foundry-rs/anvil` (pinned in package.json, installed by
`npm ci`): `node_modules/.bin/anvil`, or `$ENCLAVA_ANVIL`, or `anvil` on PATH. `--hardfork osaka`
serves the P-256 precompile (EIP-7951) at 0x100.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from contracts.errors import ToolchainError

__all__ = ["ANVIL_MNEMONIC", "AnvilNode", "find_anvil"]

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
_REPO = Path(__file__).resolve().parent.parent


def find_anvil() -> Path:
    """The Anvil binary, or `ToolchainError` saying how to install it."""
    candidates = [os.environ.get("ENCLAVA_ANVIL"), str(_REPO / "node_modules/.bin/anvil")]
    candidates.append(shutil.which("anvil"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ToolchainError("anvil not found: run `npm ci` (package.json pins @foundry-rs/anvil)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AnvilNode:
    """`with AnvilNode() as node: connect(node.url)`. `state` makes the chain survive restarts
    (Anvil dumps it on exit and loads it on start)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = 31337,
        hardfork: str = "osaka",
        state: Path | None = None,
        binary: Path | None = None,
        block_time: int = 0,
    ) -> None:
        self.port = port or _free_port()
        self.chain_id = chain_id
        self._args = [
            str(binary or find_anvil()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(chain_id),
            "--hardfork", hardfork,
            "--silent",
        ]  # fmt: skip
        if state is not None:
            self._args += ["--state", str(state)]
        if block_time:  # a block every `block_time` seconds instead of one per transaction
            self._args += ["--block-time", str(block_time)]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> AnvilNode:
        self._process = subprocess.Popen(  # noqa: S603 - our own pinned binary, fixed arguments
            self._args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise ToolchainError(f"anvil exited with {self._process.returncode}: {err[-500:]}")
            if self._answers():
                return self
            time.sleep(0.02)  # polling a child process that is starting, with a deadline
        self.stop()
        raise ToolchainError(f"anvil did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def _answers(self) -> bool:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        try:
            return httpx.post(self.url, json=body, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
