"""The committed artifacts: one per contract, loadable, canonical, and reproducible from source."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from contracts import build
from contracts.artifacts import UnknownArtifactError, load, names

REPO = Path(__file__).resolve().parents[2]
DECLARATION = re.compile(r"^(abstract\s+)?(contract|interface)\s+(\w+)", re.MULTILINE)
EIP170_LIMIT = 24_576


def declared() -> dict[str, bool]:
    """Contract and interface names in the sources -> whether they are deployable."""
    found: dict[str, bool] = {}
    for folder in build.SOURCE_DIRS:
        for path in (build.CONTRACTS / folder).rglob("*.sol"):
            for abstract, kind, name in DECLARATION.findall(path.read_text(encoding="utf-8")):
                found[name] = kind == "contract" and not abstract
    return found


def artifact_files() -> list[Path]:
    return sorted(p for folder in build.SOURCE_DIRS.values() for p in folder.glob("*.json"))


def test_every_contract_has_a_loadable_artifact() -> None:
    contracts = declared()
    assert {"Agent", "AgentFactory", "WorkerRegistry", "SignedVerdictVerifier"} <= set(contracts)
    assert set(names(include_test=True)) == set(contracts)
    for name, deployable in contracts.items():
        artifact = load(name)
        assert artifact.name == name
        assert artifact.abi
        assert artifact.compiler == build.SOLC_VERSION
        assert bool(artifact.bytecode) == deployable
        assert len(artifact.deployed_bytecode) <= EIP170_LIMIT


def test_test_doubles_stay_out_of_the_default_listing() -> None:
    assert "ReentrantCaller" not in names()
    assert "ReentrantCaller" in names(include_test=True)
    assert load("ReentrantCaller").source_name == "test_src/ReentrantCaller.sol"


@pytest.mark.parametrize("name", ["NoSuchContract", "../Agent", "Agent.json", ""])
def test_load_rejects_unknown_names(name: str) -> None:
    with pytest.raises(UnknownArtifactError):
        load(name)


@pytest.mark.parametrize("path", artifact_files(), ids=lambda p: p.name)
def test_artifact_json_is_canonical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert set(doc) == {
        "abi",
        "bytecode",
        "compiler",
        "contractName",
        "deployedBytecode",
        "sourceHash",
        "sourceName",
    }


def test_stale_artifacts_names_a_changed_file() -> None:
    current = {path: path.read_text(encoding="utf-8") for path in artifact_files()}
    assert build.stale_artifacts(current) == []
    agent = build.ARTIFACTS / "Agent.json"
    changed = {**current, agent: current[agent].replace('"0x', '"0x00', 1)}
    assert build.stale_artifacts(changed) == [agent]
    missing = {path: text for path, text in current.items() if path != agent}
    assert build.stale_artifacts(missing) == [agent]


def test_committed_artifacts_match_the_sources() -> None:
    if not (build.SOLC_JS / "package.json").is_file():
        pytest.skip("node_modules/solc is not installed: run `npm ci` (CI installs it)")
    done = subprocess.run(
        [sys.executable, "-m", "contracts.build", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
