"""The one error hierarchy of the `contracts` package (stable `code` strings).

ContractError
├── ChainUnavailableError   the node cannot be reached (down, restarting, wrong URL)
├── AccountError            no signing key configured, or an unreadable keystore
├── RevertError             a call or transaction reverted; `error_name` is the contract's
│                           custom error (e.g. "WrongFee") and `args` its decoded arguments
└── ToolchainError          solc / Anvil missing or failing
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccountError",
    "ChainUnavailableError",
    "ContractError",
    "RevertError",
    "ToolchainError",
]


class ContractError(Exception):
    """Base of every error raised by `contracts`."""

    code = "contract_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ChainUnavailableError(ContractError):
    code = "chain_unavailable"


class AccountError(ContractError, ValueError):
    code = "account_unavailable"


class ToolchainError(ContractError):
    code = "toolchain_unavailable"


class RevertError(ContractError):
    """A revert, decoded: `error_name` is the custom error's name ("Error" for a reason string,
    "Panic" for a panic code, "" when the node returned no data)."""

    code = "reverted"

    def __init__(self, error_name: str, args: tuple[Any, ...] = (), detail: str = "") -> None:
        shown = f"{error_name}({', '.join(map(repr, args))})" if error_name else "reverted"
        super().__init__(f"{shown}{': ' + detail if detail else ''}")
        self.error_name = error_name
        self.args_decoded = args
