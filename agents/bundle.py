"""Agent bundles: the ``agent.toml`` manifest, the canonical SHA-384 measurement, checked weights.

A bundle is a directory holding ``agent.toml`` and the agent's files (its entry module, small data).
Weights may live in the bundle (``source = "bundle:weights/x.bin"``) or in an installed Python
package (``source = "package:<import name>/<path inside it>"``); either way the manifest pins each
weight's size and SHA-256, and ``load_weights`` refuses a file that differs
(``WeightMismatchError``): a changed weight is a load error, never a silently different model.

Measurement (version 1). ``digest = SHA-384(encoding)`` where ``encoding`` is the concatenation of

1. the domain ``b"enclava.agent-bundle.v1\\n"``;
2. the manifest as canonical JSON (the parsed TOML; keys sorted, ``,``/``:`` separators, UTF-8),
   preceded by its length as a u64 big-endian — this is what pins external weights, through their
   ``sha256`` and ``size``;
3. the number of files as a u32 big-endian, then for every file in the tree, sorted by the UTF-8
   bytes of its path: ``u32 len(path) ‖ path ‖ u32 mode ‖ u64 size ‖ SHA-256(content)`` (all
   big-endian). ``path`` is relative to the bundle root with ``/`` separators; ``mode`` is ``0o755``
   if any execute bit is set, else ``0o644`` (as git records it, so a umask cannot change the
   digest).

No timestamps, owners or absolute paths enter the encoding, so the same source gives the same digest
in any directory on any machine. ``__pycache__`` directories and ``*.pyc`` files are derived, not
source, and are skipped; the runtime never executes them (it compiles the measured source bytes).
Anything else is measured — there is no ignore list to hide a file behind. Symbolic links and
special files are refused, and path segments are limited to ``[A-Za-z0-9._-]`` so that Unicode
normalisation on different file systems cannot change a path's bytes.

Code that the entry module imports from outside the bundle (the ``agents`` package, JAX) is not
covered by this digest: it belongs to the worker image, measured at boot, and the per-bucket program
digests of ``agents.runtime`` pin the computation it lowers to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import stat
import struct
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.errors import BundleError, WeightMismatchError, WeightMissingError
from agents.schema import Schema

__all__ = [
    "MANIFEST_NAME",
    "Bundle",
    "FileEntry",
    "Manifest",
    "Measurement",
    "Resources",
    "WeightRef",
    "load_manifest",
    "load_weights",
    "measure",
    "parse_manifest",
    "read_bundle",
]

MANIFEST_NAME = "agent.toml"
DOMAIN = b"enclava.agent-bundle.v1\n"
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SKIPPED_DIRS = frozenset({"__pycache__"})
_TOP_KEYS = frozenset(
    {
        "name",
        "version",
        "description",
        "entry",
        "resources",
        "config",
        "weights",
        "input_schema",
        "output_schema",
    }
)


@dataclass(frozen=True)
class WeightRef:
    """One weight file: where to find it and what it must hash to (SHA-256, lowercase hex)."""

    name: str
    source: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Resources:
    """Resource hints and limits; ``max_batch`` counts the calls that the batcher merges."""

    max_batch: int = 16
    max_wait_ms: float = 2.0
    max_input_bytes: int = 256 * 1024
    max_json_depth: int = 8
    float_decimals: int = 6


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked ``agent.toml``; ``document`` is the TOML table that is measured."""

    name: str
    version: str
    description: str
    entry_module: str
    entry_callable: str
    input_schema: Schema
    output_schema: Schema
    weights: tuple[WeightRef, ...]
    resources: Resources
    config: Mapping[str, Any]
    document: Mapping[str, Any] = field(repr=False)

    def canonical(self) -> bytes:
        """The manifest's canonical JSON bytes (part 2 of the measurement)."""
        try:
            text = json.dumps(
                self.document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{MANIFEST_NAME}: value not representable in JSON ({exc})") from None
        return text.encode("utf-8")


@dataclass(frozen=True)
class FileEntry:
    """One measured file: relative path, normalised mode, size and SHA-256 of its content."""

    path: str
    mode: int
    size: int
    sha256: bytes


@dataclass(frozen=True)
class Measurement:
    """A bundle's SHA-384 measurement (48 bytes) and the file entries it covers."""

    digest: bytes
    files: tuple[FileEntry, ...]

    @property
    def hex(self) -> str:
        return self.digest.hex()


@dataclass(frozen=True)
class Bundle:
    """A bundle read into memory once: what is measured is exactly what the runtime executes."""

    root: Path
    manifest: Manifest
    measurement: Measurement
    files: Mapping[str, bytes] = field(repr=False)


def parse_manifest(data: bytes) -> Manifest:
    """Parse and check ``agent.toml`` bytes; unknown keys and bad values are ``BundleError``."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BundleError(f"{MANIFEST_NAME}: {exc}") from None
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise BundleError(f"{MANIFEST_NAME}: unknown key(s) {sorted(unknown)}")
    name = _text(doc, "name")
    if not _NAME.fullmatch(name):
        raise BundleError(f"{MANIFEST_NAME}: name {name!r} must match {_NAME.pattern}")
    module, _, func = _text(doc, "entry").partition(":")
    if not func or not all(_IDENT.fullmatch(p) for p in [*module.split("."), func]):
        raise BundleError(f"{MANIFEST_NAME}: entry must be 'module:callable', got {doc['entry']!r}")
    manifest = Manifest(
        name=name,
        version=_text(doc, "version"),
        description=str(doc.get("description", "")),
        entry_module=module,
        entry_callable=func,
        input_schema=Schema(_table(doc, "input_schema"), where="input_schema"),
        output_schema=Schema(_table(doc, "output_schema"), where="output_schema"),
        weights=_weights(doc.get("weights", {})),
        resources=_resources(doc.get("resources", {})),
        config=_table(doc, "config", required=False),
        document=doc,
    )
    manifest.canonical()
    return manifest


def load_manifest(path: Path | str) -> Manifest:
    """Read the manifest of the bundle at ``path`` (the directory or its ``agent.toml``)."""
    path = Path(path)
    file = path / MANIFEST_NAME if path.is_dir() else path
    try:
        return parse_manifest(file.read_bytes())
    except OSError as exc:
        raise BundleError(f"cannot read {file}: {exc.strerror}") from None


def measure(path: Path | str) -> Measurement:
    """Measure the bundle at ``path`` (streaming; see the module docstring for the encoding)."""
    root = Path(path)
    entries = []
    for rel, file in _walk(root):
        digest = hashlib.sha256()
        size = 0
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        entries.append(FileEntry(rel, _mode(file), size, digest.digest()))
    return _measurement(load_manifest(root), entries)


def read_bundle(path: Path | str) -> Bundle:
    """Read every file of the bundle once, parse the manifest from those bytes, and measure them."""
    root = Path(path).resolve()
    files: dict[str, bytes] = {}
    entries = []
    for rel, file in _walk(root):
        content = file.read_bytes()
        files[rel] = content
        entries.append(FileEntry(rel, _mode(file), len(content), hashlib.sha256(content).digest()))
    if MANIFEST_NAME not in files:
        raise BundleError(f"{root}: no {MANIFEST_NAME}")
    manifest = parse_manifest(files[MANIFEST_NAME])
    return Bundle(root, manifest, _measurement(manifest, entries), files)


def load_weights(bundle: Bundle) -> dict[str, bytes]:
    """Resolve every weight and return its bytes, checked against the pinned size and SHA-256."""
    weights = {}
    for ref in bundle.manifest.weights:
        content = _read_source(bundle, ref)
        if len(content) != ref.size or hashlib.sha256(content).hexdigest() != ref.sha256:
            raise WeightMismatchError(
                f"weight {ref.name!r} ({ref.source}) does not match the manifest: "
                f"size {len(content)} sha256 {hashlib.sha256(content).hexdigest()}, "
                f"expected size {ref.size} sha256 {ref.sha256}"
            )
        weights[ref.name] = content
    return weights


def _read_source(bundle: Bundle, ref: WeightRef) -> bytes:
    kind, _, rel = ref.source.partition(":")
    if kind == "bundle":
        if rel not in bundle.files:
            raise WeightMissingError(f"weight {ref.name!r}: {rel!r} is not a file of the bundle")
        return bundle.files[rel]
    package, _, inner = rel.partition("/")
    spec = importlib.util.find_spec(package)
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise WeightMissingError(f"weight {ref.name!r}: package {package!r} is not installed")
    base = Path(next(iter(locations))).resolve()
    file = (base / inner).resolve()
    if not file.is_relative_to(base) or not file.is_file():
        raise WeightMissingError(
            f"weight {ref.name!r}: {inner!r} not found in package {package!r} ({base})"
        )
    return file.read_bytes()


def _measurement(manifest: Manifest, entries: list[FileEntry]) -> Measurement:
    entries.sort(key=lambda e: e.path.encode("utf-8"))
    canonical = manifest.canonical()
    hasher = hashlib.sha384(DOMAIN)
    hasher.update(struct.pack(">Q", len(canonical)) + canonical)
    hasher.update(struct.pack(">I", len(entries)))
    for e in entries:
        path = e.path.encode("utf-8")
        hasher.update(
            struct.pack(">I", len(path)) + path + struct.pack(">IQ", e.mode, e.size) + e.sha256
        )
    return Measurement(hasher.digest(), tuple(entries))


def _walk(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise BundleError(f"{root}: not a directory")
    found = []
    pending = [root]
    while pending:
        directory = pending.pop()
        for child in directory.iterdir():
            if not _SEGMENT.fullmatch(child.name) or child.name in (".", ".."):
                raise BundleError(f"{child}: file names may only use A-Z a-z 0-9 . _ -")
            mode = child.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise BundleError(f"{child}: symbolic links are not allowed in a bundle")
            if stat.S_ISDIR(mode):
                if child.name not in _SKIPPED_DIRS:
                    pending.append(child)
            elif stat.S_ISREG(mode):
                if child.suffix != ".pyc":
                    found.append((child.relative_to(root).as_posix(), child))
            else:
                raise BundleError(f"{child}: only regular files and directories are allowed")
    return found


def _mode(file: Path) -> int:
    return 0o755 if file.stat().st_mode & 0o111 else 0o644


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise BundleError(f"{MANIFEST_NAME}: {key} must be a non-empty string")
    return value


def _table(doc: Mapping[str, Any], key: str, *, required: bool = True) -> Mapping[str, Any]:
    value = doc.get(key, None if required else {})
    if not isinstance(value, dict):
        raise BundleError(f"{MANIFEST_NAME}: [{key}] must be a table")
    return value


def _weights(table: Any) -> tuple[WeightRef, ...]:
    if not isinstance(table, dict):
        raise BundleError(f"{MANIFEST_NAME}: [weights] must be a table of tables")
    refs = []
    for name, entry in sorted(table.items()):
        if not isinstance(entry, dict) or set(entry) != {"source", "sha256", "size"}:
            raise BundleError(
                f"{MANIFEST_NAME}: [weights.{name}] needs exactly source, sha256, size"
            )
        source, sha, size = entry["source"], entry["sha256"], entry["size"]
        kind, _, rel = str(source).partition(":")
        parts = rel.split("/")
        valid_rel = all(_SEGMENT.fullmatch(p) and p not in (".", "..") for p in parts)
        if (
            kind not in ("bundle", "package")
            or not valid_rel
            or (kind == "package" and len(parts) < 2)
        ):
            raise BundleError(
                f"{MANIFEST_NAME}: weights.{name}.source must be bundle:PATH or package:NAME/PATH"
            )
        if kind == "package" and not _IDENT.fullmatch(parts[0]):
            raise BundleError(f"{MANIFEST_NAME}: weights.{name}.source names no importable package")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise BundleError(
                f"{MANIFEST_NAME}: weights.{name}.sha256 must be 64 lowercase hex digits"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError(
                f"{MANIFEST_NAME}: weights.{name}.size must be a non-negative integer"
            )
        refs.append(WeightRef(name, source, sha, size))
    return tuple(refs)


def _resources(table: Any) -> Resources:
    if not isinstance(table, dict):
        raise BundleError(f"{MANIFEST_NAME}: [resources] must be a table")
    defaults = asdict(Resources())
    unknown = set(table) - set(defaults)
    if unknown:
        raise BundleError(f"{MANIFEST_NAME}: unknown resource(s) {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key, default in defaults.items():
        value = table.get(key, default)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or value < 0 or (isinstance(default, int) and not isinstance(value, int)):
            raise BundleError(
                f"{MANIFEST_NAME}: resources.{key} must be a non-negative {type(default).__name__}"
            )
        values[key] = type(default)(value)
    if values["max_batch"] < 1:
        raise BundleError(f"{MANIFEST_NAME}: resources.max_batch must be at least 1")
    return Resources(**values)
