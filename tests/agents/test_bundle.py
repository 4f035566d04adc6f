"""Bundle measurement: reproducible, sensitive to every change; weights checked at load."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.builtin import builtin_bundle, builtin_names
from agents.bundle import (
    DOMAIN,
    Bundle,
    load_manifest,
    load_weights,
    measure,
    read_bundle,
)
from agents.errors import BundleError, WeightMismatchError, WeightMissingError
from agents.runtime import AgentRuntime
from tests.agents.conftest import write_tiny_bundle

EMBED_MODEL_SHA = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.mark.parametrize("name", builtin_names())
def test_measurement_is_reproducible_across_fresh_copies_in_different_paths(
    name: str, tmp_path: Path
) -> None:
    first = copy_bundle(builtin_bundle(name), tmp_path / "one" / name)
    second = copy_bundle(builtin_bundle(name), tmp_path / "elsewhere" / "deeper" / "copy")
    os.utime(second / "agent.toml", (0, 0))  # timestamps are not measured
    digest = measure(first)
    assert len(digest.digest) == 48
    assert digest == measure(second) == measure(builtin_bundle(name))
    assert read_bundle(first).measurement == digest


def test_builtin_bundles_differ() -> None:
    assert measure(builtin_bundle("embed")).hex != measure(builtin_bundle("private-search")).hex


def test_measurement_matches_the_documented_encoding(tiny_bundle: Path) -> None:
    manifest = load_manifest(tiny_bundle)
    entries = []
    for rel in sorted(["agent.toml", "model.py", "weights/scale.bin"], key=str.encode):
        content = (tiny_bundle / rel).read_bytes()
        path = rel.encode()
        entries.append(
            struct.pack(">I", len(path))
            + path
            + struct.pack(">IQ", 0o644, len(content))
            + hashlib.sha256(content).digest()
        )
    canonical = manifest.canonical()
    encoding = (
        DOMAIN
        + struct.pack(">Q", len(canonical))
        + canonical
        + struct.pack(">I", len(entries))
        + b"".join(entries)
    )
    assert measure(tiny_bundle).digest == hashlib.sha384(encoding).digest()


def test_canonical_manifest_is_sorted_compact_json(tiny_bundle: Path) -> None:
    canonical = load_manifest(tiny_bundle).canonical()
    assert canonical.startswith(b'{"entry":"model:create","input_schema":{')
    assert b" " not in canonical.replace(b"0.1.0", b"")


def test_bytecode_caches_and_permission_bits_other_than_execute_are_not_measured(
    tiny_bundle: Path,
) -> None:
    before = measure(tiny_bundle)
    (tiny_bundle / "__pycache__").mkdir()
    (tiny_bundle / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"derived")
    (tiny_bundle / "model.py").chmod(0o600)
    assert measure(tiny_bundle) == before
    (tiny_bundle / "model.py").chmod(0o755)
    assert measure(tiny_bundle) != before


@pytest.mark.parametrize(
    ("relative", "edit"),
    [
        ("model.py", lambda text: text + "\n# a comment is a change too\n"),
        ("agent.toml", lambda text: text.replace('version = "0.1.0"', 'version = "0.1.1"')),
        ("agent.toml", lambda text: text.replace(EMBED_MODEL_SHA, "0" * 64)),
    ],
    ids=["code", "manifest", "weight-pin"],
)
def test_any_change_to_code_manifest_or_weight_pin_changes_the_measurement(
    tmp_path: Path, relative: str, edit: Callable[[str], str]
) -> None:
    bundle = copy_bundle(builtin_bundle("embed"), tmp_path / "embed")
    before = measure(bundle)
    file = bundle / relative
    changed = edit(file.read_text())
    assert changed != file.read_text()
    file.write_text(changed)
    assert measure(bundle) != before


def test_added_file_and_changed_local_weight_change_the_measurement(tiny_bundle: Path) -> None:
    before = measure(tiny_bundle)
    (tiny_bundle / "notes.txt").write_text("extra")
    with_extra = measure(tiny_bundle)
    assert with_extra != before
    (tiny_bundle / "notes.txt").unlink()
    (tiny_bundle / "weights" / "scale.bin").write_bytes(b"\x04\x00\x00\x00")
    assert measure(tiny_bundle) not in (before, with_extra)


def test_tampered_local_weight_is_refused_at_load(tiny_bundle: Path) -> None:
    (tiny_bundle / "weights" / "scale.bin").write_bytes(b"\x04\x00\x00\x00")
    with pytest.raises(WeightMismatchError, match="does not match the manifest") as caught:
        AgentRuntime.load(tiny_bundle)
    assert caught.value.code == "weight_mismatch"


def test_tampered_weight_in_an_installed_package_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "enclava_test_weights"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "scale.bin").write_bytes((3).to_bytes(4, "little"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    bundle = write_tiny_bundle(tmp_path / "tiny")
    manifest = bundle / "agent.toml"
    manifest.write_text(
        manifest.read_text().replace(
            "bundle:weights/scale.bin", "package:enclava_test_weights/scale.bin"
        )
    )
    with AgentRuntime.load(bundle, compile_all=False) as runtime:
        assert runtime.invoke({"values": [1, 2]}).output["scaled"] == [3.0, 6.0]
    (package / "scale.bin").write_bytes((5).to_bytes(4, "little"))
    with pytest.raises(WeightMismatchError):
        AgentRuntime.load(bundle)


def test_builtin_manifest_pinning_a_different_weight_is_refused(tmp_path: Path) -> None:
    bundle = copy_bundle(builtin_bundle("embed"), tmp_path / "embed")
    manifest = bundle / "agent.toml"
    manifest.write_text(manifest.read_text().replace(EMBED_MODEL_SHA, "ab" * 32))
    with pytest.raises(WeightMismatchError, match="'model'"):
        load_weights(read_bundle(bundle))


def test_builtin_weights_resolve_from_the_installed_package() -> None:
    bundle: Bundle = read_bundle(builtin_bundle("embed"))
    weights = load_weights(bundle)
    assert hashlib.sha256(weights["model"]).hexdigest() == EMBED_MODEL_SHA
    assert set(weights) == {"model", "tokenizer"}


def test_missing_package_or_file_is_a_clear_error(tiny_bundle: Path) -> None:
    manifest = tiny_bundle / "agent.toml"
    original = manifest.read_text()
    manifest.write_text(
        original.replace("bundle:weights/scale.bin", "package:no_such_pkg_xyz/w.bin")
    )
    with pytest.raises(WeightMissingError, match="not installed"):
        load_weights(read_bundle(tiny_bundle))
    manifest.write_text(original.replace("bundle:weights/scale.bin", "bundle:weights/other.bin"))
    with pytest.raises(WeightMissingError, match="not a file of the bundle"):
        load_weights(read_bundle(tiny_bundle))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "tiny"', 'name = "Tiny Agent"', "name"),
        ('entry = "model:create"', 'entry = "model"', "entry"),
        ("[resources]", "surprise = 1\n[resources]", "unknown key"),
        ("max_batch = 8", "max_batch = 0", "max_batch"),
        ("max_batch = 8", "max_batch = 8\nturbo = true", "unknown resource"),
        ('type = "object"', 'type = "object"\npattern = "x"', "unsupported schema keyword"),
        ('source = "bundle:weights/scale.bin"', 'source = "bundle:../x"', "source"),
        ('source = "bundle:weights/scale.bin"', 'source = "https://x/y"', "source"),
        ("size = 4", 'size = "4"', "size"),
    ],
)
def test_malformed_manifest_is_a_bundle_error(
    tiny_bundle: Path, old: str, new: str, message: str
) -> None:
    manifest = tiny_bundle / "agent.toml"
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new, 1))
    with pytest.raises(BundleError, match=message):
        measure(tiny_bundle)


def test_symlinks_and_odd_names_are_refused(tiny_bundle: Path) -> None:
    (tiny_bundle / "link.py").symlink_to(tiny_bundle / "model.py")
    with pytest.raises(BundleError, match="symbolic links"):
        measure(tiny_bundle)
    (tiny_bundle / "link.py").unlink()
    (tiny_bundle / "naïve.txt").write_text("x")
    with pytest.raises(BundleError, match="file names"):
        measure(tiny_bundle)


def test_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("")
    with pytest.raises(BundleError, match="agent\\.toml"):
        read_bundle(tmp_path)
    with pytest.raises(BundleError):
        measure(tmp_path)
