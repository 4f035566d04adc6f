"""How every command ends: exit codes, and unusable input reported without a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console

__all__ = [
    "EXIT_ACCEPTED",
    "EXIT_BAD_INPUT",
    "EXIT_REJECTED",
    "BadInputError",
    "Progress",
    "fail",
    "progress",
]

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2


class BadInputError(Exception):
    """Input a command cannot use; becomes exit status 2 with a typed error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail(
    as_json: bool, code: str, message: str, *, fields: dict[str, object] | None = None
) -> NoReturn:
    """Report unusable input and exit 2. `--json`: one object with `error: {code, message}` and
    any command-specific `fields` (e.g. `verify`'s verified/accepted/reasons)."""
    if as_json:
        doc = {**(fields or {}), "error": {"code": code, "message": message}}
        print(json.dumps(doc, sort_keys=True))
    else:
        Console(stderr=True, highlight=False).print(f"[bold red]error[/] ({code}): {message}")
    raise typer.Exit(EXIT_BAD_INPUT)


Progress = Callable[[str], None]


@contextmanager
def progress(message: str, as_json: bool) -> Iterator[Progress]:
    """A spinner on stderr naming the step in progress (rich); yields a function that renames the
    step. Silent with `--json` and wherever stderr is not a terminal, so output stays parseable."""
    console = Console(stderr=True, highlight=False)
    if as_json or not console.is_terminal:
        yield lambda step: None
        return
    with console.status(message) as status:
        yield lambda step: status.update(step)
