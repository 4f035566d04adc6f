"""Decode revert data into `RevertError`: custom errors by their 4-byte selector in the ABIs
given, `Error(string)` reasons and `Panic(uint256)` codes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from contracts.errors import RevertError

__all__ = ["RevertDecoder"]

_ERROR_STRING = keccak(text="Error(string)")[:4]
_PANIC = keccak(text="Panic(uint256)")[:4]


def _signature(entry: Mapping[str, Any]) -> tuple[str, list[str]]:
    types = [_type(i) for i in entry.get("inputs", [])]
    return f"{entry['name']}({','.join(types)})", types


def _type(param: Mapping[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple') :]}"
    return str(param["type"])


class RevertDecoder:
    """Knows the custom errors of a set of ABIs."""

    def __init__(self, abis: Iterable[Iterable[Mapping[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {}
        for abi in abis:
            for entry in abi:
                if entry.get("type") == "error":
                    signature, types = _signature(entry)
                    self._errors[keccak(text=signature)[:4]] = (str(entry["name"]), types)

    def decode(self, data: bytes | str | None) -> RevertError:
        try:
            raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else (data or b"")
        except ValueError:
            return RevertError("", (), f"undecodable revert data {data!r}")
        selector, body = raw[:4], raw[4:]
        try:
            if selector == _ERROR_STRING:
                (reason,) = decode(["string"], body)
                return RevertError("Error", (reason,))
            if selector == _PANIC:
                (code,) = decode(["uint256"], body)
                return RevertError("Panic", (code,))
            if selector in self._errors:
                name, types = self._errors[selector]
                return RevertError(name, tuple(decode(types, body)))
        except (DecodingError, UnicodeDecodeError) as exc:  # malformed revert data from the node
            return RevertError("", (), f"undecodable revert data {raw.hex()}: {exc}")
        return RevertError("", (), f"unknown revert data 0x{raw.hex()}" if raw else "")
