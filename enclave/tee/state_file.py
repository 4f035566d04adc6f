"""A simulator's persistent state: one private JSON file (mode 0600, written atomically) that a
simulated machine or GPU is rebuilt from on every start, so its roots and keys survive restarts
the way a real device's fused keys do."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from enclave.errors import SealingError, TeeUnavailableError

__all__ = ["load_or_create_state", "read_state", "write_private_json"]

_T = TypeVar("_T")


def read_state(path: Path, load: Callable[[dict[str, Any]], _T], what: str) -> _T:
    """The state in `path`; `TeeUnavailableError` when there is none, `SealingError` when it is
    unreadable (`what` names it in messages, e.g. "simulated GPU")."""
    try:
        return load(json.loads(path.read_text()))
    except FileNotFoundError:
        raise TeeUnavailableError(f"no {what} in {path.parent}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SealingError(f"{what} state {path} is unreadable: {exc}") from None


def load_or_create_state(
    path: Path,
    *,
    load: Callable[[dict[str, Any]], _T],
    create: Callable[[], _T],
    dump: Callable[[_T], dict[str, Any]],
    what: str,
) -> _T:
    """The state in `path`, or a new one (`create`) written there first."""
    if path.exists():
        return read_state(path, load, what)
    state = create()
    write_private_json(path, dump(state))
    return state


def write_private_json(path: Path, doc: Any) -> None:
    """Write `doc` to `path` readable by its owner only, complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out)
    os.replace(tmp, path)
