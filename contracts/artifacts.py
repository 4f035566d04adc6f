"""The committed compiler output (`contracts/artifacts/*.json`), loaded as frozen values.

`load("Agent")` reads `artifacts/Agent.json`; test doubles (`artifacts/test/*.json`) load by name
too. Files are read through importlib.resources, so this works from a wheel as well as from a
checkout. `python -m contracts.build` writes the files; nothing here needs solc or node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from contracts.errors import ContractError

__all__ = ["Artifact", "UnknownArtifactError", "load", "names"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FOLDERS = (("artifacts",), ("artifacts", "test"))


class UnknownArtifactError(ContractError, LookupError):
    """No committed artifact has this contract name."""

    code = "unknown_artifact"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: its ABI, creation bytecode and runtime bytecode.

    `abi` is the JSON ABI as solc wrote it (a tuple of JSON objects; web3.py accepts it as is).
    Interfaces and abstract contracts have empty bytecode.
    """

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes
    source_name: str
    compiler: str
    source_hash: str


def _folder(parts: tuple[str, ...]) -> Traversable:
    folder = files(__package__ or "contracts")
    for part in parts:
        folder = folder / part
    return folder


@cache
def load(name: str) -> Artifact:
    """The artifact of contract `name` (e.g. "Agent", "ReentrantCaller").

    Raises `UnknownArtifactError` if no committed artifact has that name.
    """
    if not _NAME.fullmatch(name):
        raise UnknownArtifactError(f"not a contract name: {name!r}")
    for parts in _FOLDERS:
        resource = _folder(parts) / f"{name}.json"
        if resource.is_file():
            doc = json.loads(resource.read_text(encoding="utf-8"))
            return Artifact(
                name=doc["contractName"],
                abi=tuple(doc["abi"]),
                bytecode=bytes.fromhex(doc["bytecode"].removeprefix("0x")),
                deployed_bytecode=bytes.fromhex(doc["deployedBytecode"].removeprefix("0x")),
                source_name=doc["sourceName"],
                compiler=doc["compiler"],
                source_hash=doc["sourceHash"],
            )
    raise UnknownArtifactError(f"no artifact named {name!r}: run `python -m contracts.build`")


def names(*, include_test: bool = False) -> list[str]:
    """Names of the committed artifacts, sorted; test doubles only if `include_test`."""
    folders = _FOLDERS if include_test else _FOLDERS[:1]
    found = {
        entry.name.removesuffix(".json")
        for parts in folders
        for entry in _folder(parts).iterdir()
        if entry.is_file() and entry.name.endswith(".json")
    }
    return sorted(found)
