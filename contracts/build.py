"""Compile the Solidity sources into the committed artifacts, or check that they are current.

    python -m contracts.build            # write contracts/artifacts/**.json
    python -m contracts.build --check    # exit 1, naming the files, if the artifacts are stale

Every `.sol` under `contracts/src` and `contracts/test_src` is compiled in one standard-JSON run
of the npm-pinned solc (`node_modules/solc`, installed by `npm ci`; run through `node`) for the
Prague EVM, optimised (viaIR, 10,000 runs), with settings that make the bytecode reproducible:
no metadata hash and no CBOR trailer. Warnings fail the build like errors. Contracts from `src/`
land in `contracts/artifacts/<Name>.json`, test doubles from `test_src/` in
`contracts/artifacts/test/`; libraries (no ABI) get no artifact. Each JSON has sorted keys and a
trailing newline, so a diff shows only what changed. `sourceHash` is the SHA-256 over the source
units the contract was compiled from (its file and everything it imports), so a change
elsewhere leaves it alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import ToolchainError

__all__ = [
    "ARTIFACTS",
    "SOLC_VERSION",
    "BuildError",
    "compile_artifacts",
    "main",
    "stale_artifacts",
    "write_artifacts",
]

SOLC_VERSION = "0.8.37"
CONTRACTS = Path(__file__).resolve().parent
REPO = CONTRACTS.parent
ARTIFACTS = CONTRACTS / "artifacts"
SOURCE_DIRS = {"src": ARTIFACTS, "test_src": ARTIFACTS / "test"}
SOLC_JS = REPO / "node_modules" / "solc"
# viaIR and 10,000 runs: about 1.8k gas less per `fulfill` than the legacy pipeline at 200 runs
# (bench/gas.py); the larger implementation is deployed once, clones stay 103 bytes.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 10_000},
    "viaIR": True,
    "evmVersion": "prague",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}
    },
}
# Reads the standard-JSON input on stdin; prints {"version", "output"}.
_NODE_COMPILE = """
const solc = require(process.argv[1]);
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({version: solc.version(), output}));
});
"""


class BuildError(ToolchainError):
    """The toolchain is missing or wrong, or the sources do not compile."""

    code = "build_failed"


@dataclass(frozen=True)
class _Source:
    unit: str  # solc source unit name, e.g. "src/Agent.sol"
    text: str


def _sources() -> dict[str, _Source]:
    sources: dict[str, _Source] = {}
    for folder in SOURCE_DIRS:
        for path in sorted((CONTRACTS / folder).rglob("*.sol")):
            unit = path.relative_to(CONTRACTS).as_posix()
            sources[unit] = _Source(unit, path.read_text(encoding="utf-8"))
    if not sources:
        raise BuildError(f"no .sol files under {CONTRACTS / 'src'}")
    return sources


def _run_solc(sources: Mapping[str, _Source]) -> dict[str, Any]:
    if not (SOLC_JS / "package.json").is_file():
        raise BuildError(
            f"{SOLC_JS} is missing: run `npm ci` in {REPO} "
            f"to install the pinned solc {SOLC_VERSION}"
        )
    node = shutil.which("node")
    if node is None:
        raise BuildError("`node` is not on PATH: install Node.js 20+ to run the pinned solcjs")
    request = {
        "language": "Solidity",
        "sources": {unit: {"content": src.text} for unit, src in sources.items()},
        "settings": SETTINGS,
    }
    done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
        [node, "-e", _NODE_COMPILE, str(SOLC_JS)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BuildError(f"solcjs failed (exit {done.returncode}):\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    version = str(result["version"])
    if version.split("+", 1)[0] != SOLC_VERSION:
        raise BuildError(f"node_modules has solc {version}, expected {SOLC_VERSION}: run `npm ci`")
    output: dict[str, Any] = result["output"]
    problems = [e for e in output.get("errors", []) if e.get("severity") != "info"]
    if problems:
        messages = "\n".join(str(e.get("formattedMessage", e.get("message"))) for e in problems)
        raise BuildError(f"solc reported errors or warnings (both fail the build):\n{messages}")
    return output


def _source_hash(metadata: str, sources: Mapping[str, _Source]) -> str:
    digest = hashlib.sha256()
    for unit in sorted(json.loads(metadata)["sources"]):
        digest.update(unit.encode() + b"\0" + sources[unit].text.encode() + b"\0")
    return digest.hexdigest()


def _render(artifact: Mapping[str, Any]) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def compile_artifacts() -> dict[Path, str]:
    """Compiles every source; returns artifact path -> rendered JSON text. Writes nothing."""
    sources = _sources()
    output = _run_solc(sources)
    rendered: dict[Path, str] = {}
    for unit, contracts in sorted(output["contracts"].items()):
        folder = SOURCE_DIRS[unit.split("/", 1)[0]]
        for name, compiled in sorted(contracts.items()):
            if not compiled["abi"]:
                continue
            path = folder / f"{name}.json"
            if path in rendered or any(p.name == path.name for p in rendered):
                raise BuildError(f"two contracts are named {name}: artifact names must be unique")
            rendered[path] = _render(
                {
                    "contractName": name,
                    "sourceName": unit,
                    "abi": compiled["abi"],
                    "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                    "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                    "compiler": SOLC_VERSION,
                    "sourceHash": _source_hash(compiled["metadata"], sources),
                }
            )
    return rendered


def _existing() -> set[Path]:
    return {path for folder in SOURCE_DIRS.values() for path in folder.glob("*.json")}


def stale_artifacts(rendered: Mapping[Path, str]) -> list[Path]:
    """Artifact files that are missing, differ from `rendered`, or have no source any more."""
    stale = {
        path
        for path, text in rendered.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    }
    stale |= _existing() - set(rendered)
    return sorted(stale)


def write_artifacts(rendered: Mapping[Path, str]) -> list[Path]:
    """Writes `rendered`, deletes artifacts without a source; returns the paths it changed."""
    changed = stale_artifacts(rendered)
    for path in _existing() - set(rendered):
        path.unlink()
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.build", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile in memory and fail if the committed artifacts differ",
    )
    args = parser.parse_args(argv)
    try:
        rendered = compile_artifacts()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_artifacts(rendered)
        for path in stale:
            print(f"stale: {path.relative_to(REPO)}", file=sys.stderr)
        if stale:
            print("run `python -m contracts.build` and commit the artifacts", file=sys.stderr)
            return 1
        print(f"{len(rendered)} artifacts match the sources")
        return 0
    changed = write_artifacts(rendered)
    for path in changed:
        print(f"wrote {path.relative_to(REPO)}")
    print(f"{len(rendered)} artifacts, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
