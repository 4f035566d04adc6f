"""Readers for the deployment files the tests check: the Dockerfile's instructions, the build
context `.dockerignore` leaves, the command lines that containers run."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from enclava.cli import app

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: str


def dockerfile(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; `stage` is the name of
    the stage (or its index) each belongs to."""
    text = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", path.read_text())
    out: list[Instruction] = []
    stage, count = "", 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            words = args.split()
            stage = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(count)
            count += 1
        out.append(Instruction(stage, keyword.upper(), args.strip()))
    return out


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"{instruction.keyword} must use the exec (JSON) form"
    return [str(v) for v in value]


def _pattern(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@dataclass(frozen=True)
class Rule:
    negated: bool
    text: str
    pattern: re.Pattern[str]


def dockerignore(path: Path = ROOT / ".dockerignore") -> list[Rule]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        text = line.lstrip("!").strip("/")
        rules.append(Rule(line.startswith("!"), text, _pattern(text)))
    return rules


def in_context(relative: str, rules: list[Rule]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parent directories
    decides; a negated pattern puts the path back."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for rule in rules:
        if any(rule.pattern.fullmatch(p) for p in prefixes):
            included = rule.negated
    return included


def context_files(root: Path = ROOT) -> Iterator[str]:
    """The files `docker build` sends. Top-level folders that are excluded and that no negated
    pattern names are not walked (they hold .venv, node_modules, .git)."""
    rules = dockerignore(root / ".dockerignore")
    for top in sorted(root.iterdir()):
        named = any(r.negated and r.text.split("/")[0] == top.name for r in rules)
        if top.is_dir() and not named and not in_context(top.name, rules):
            continue
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and in_context(relative, rules):
                yield relative


def assert_cli_accepts(argv: list[str]) -> None:
    """Run `enclava ARGV --help`: click parses every option before it prints help, so this
    fails on a subcommand or flag that does not exist, without running anything."""
    result = CliRunner().invoke(app, [*argv, "--help"])
    command = shlex.join(["enclava", *argv])
    assert result.exit_code == 0, f"{command}: {result.output}"
