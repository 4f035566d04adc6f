"""The agent runtime: load a measured bundle, compile its shape buckets once, serve batched calls.

Loading (``AgentRuntime.load``) reads the bundle into memory and measures those bytes, resolves and
checks every weight (``WeightMismatchError`` on any difference), compiles the entry module from the
measured source (never a file read a second time, never a ``.pyc``), and calls its factory with an
``AgentContext``. The agent returns a ``ProgramSpec``: one pure JAX function, its parameters, and
the argument shapes of each shape bucket. The runtime places the parameters on ``jax.devices()[0]``
(a GPU when present, else the CPU) — or, given several devices, replicates them and splits the
arguments data-parallel (``agents.placement``) — lowers the function once per bucket and, by
default, compiles every bucket at load. Calls run the compiled executables only; an argument of any
other shape is an error, so no input can trigger a recompile.

Program digests: after lowering, the SHA-384 of each bucket's StableHLO text (``Lowered.as_text()``,
no debug locations) is the bucket's program digest. The text names shapes, ops and precision but
neither weights (they are arguments) nor a device, so the digest identifies the program
independently of where it runs; the worker extends these into RTMR3 and names ``programs_digest`` in
every signed reply.

Calls: ``submit`` / ``invoke`` / ``ainvoke`` parse and validate the input in the caller's thread —
byte limit, nesting depth, strict JSON, the manifest's input schema — so bad input is refused before
any model work. Valid calls go to a ``DynamicBatcher`` (``max_batch`` calls, ``max_wait_ms``), the
agent runs the merged batch, and each output is made canonical (``agents.canonical``), checked
against the output schema and returned as a ``Reply``.

Determinism, and where float non-determinism could still appear:

- Batch composition: agents must make an item's result independent of the batch (the MiniLM agents
  run one fixed tile shape per loop step; see ``agents.builtin.minilm``), so the dynamic batcher
  cannot change any output bit.
- Device type: CPU and GPU, or CPUs with different vector units (AVX-512 vs AVX2), run different
  kernels with different summation orders; results then differ in the last bits, and rounding in the
  canonical encoding hides most but not all such differences. The same input gives the same bytes on
  the same device type and software versions.
- jaxlib/XLA versions and XLA flags change kernels the same way; the program digest does not cover
  them.
- GPUs: reductions using atomics and autotuned GEMM algorithms may vary between runs; set
  ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` where bit-exact replay on GPU matters.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import jax

from agents.batcher import DynamicBatcher
from agents.bundle import Bundle, Manifest, load_weights, read_bundle
from agents.canonical import canonicalize, dump_canonical
from agents.errors import (
    AgentError,
    AgentRunError,
    BundleError,
    InputError,
    OutputError,
    RuntimeLoadError,
)
from agents.placement import lower_buckets
from agents.schema import parse_json

__all__ = [
    "Agent",
    "AgentContext",
    "AgentRuntime",
    "ProgramSpec",
    "Programs",
    "Reply",
    "RuntimeStats",
    "arg_spec",
]

_ShapeDtypeStruct = cast(Callable[..., jax.ShapeDtypeStruct], jax.ShapeDtypeStruct)


def arg_spec(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
    """A bucket argument as ``jax.ShapeDtypeStruct``: its shape and dtype, no data."""
    return _ShapeDtypeStruct(shape, dtype)


@dataclass(frozen=True)
class ProgramSpec:
    """What an agent asks the runtime to compile: ``fn(params, *args)`` per bucket's shapes."""

    fn: Callable[..., Any]
    params: Any
    buckets: Mapping[str, tuple[jax.ShapeDtypeStruct, ...]]


class Programs(Protocol):
    """Runs a compiled bucket: ``programs(bucket, *args)`` returns the outputs as numpy arrays."""

    def __call__(self, bucket: str, *args: Any) -> Any: ...


class Agent(Protocol):
    """What an entry point's factory returns."""

    def program(self) -> ProgramSpec: ...

    def run(self, inputs: Sequence[Any], programs: Programs) -> Sequence[Any]: ...


@dataclass(frozen=True)
class AgentContext:
    """Handed to the factory: the manifest, checked weights by name, the measured files."""

    manifest: Manifest
    weights: Mapping[str, bytes] = field(repr=False)
    files: Mapping[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class Reply:
    """One answered call: the canonical output, its bytes, and what produced it (hex digests)."""

    output: Any
    body: bytes
    agent_measurement: str
    programs_digest: str
    latency_s: float


@dataclass(frozen=True)
class RuntimeStats:
    """Timings in seconds (latencies in milliseconds, over the most recent calls)."""

    device: str
    load_s: float
    lower_s: float
    compile_s: Mapping[str, float]
    calls: int
    rejected: int
    batches: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_mean: float


@dataclass(frozen=True)
class _Call:
    value: Any
    started: float


class _CompiledBuckets:
    """Lowered programs per bucket, compiled once (at load or first use), then only run."""

    def __init__(self, spec: ProgramSpec, devices: Sequence[jax.Device]) -> None:
        self.params, self.lowered = lower_buckets(spec.fn, spec.params, dict(spec.buckets), devices)
        self.digests = {
            name: hashlib.sha384(low.as_text().encode("utf-8")).hexdigest()
            for name, low in self.lowered.items()
        }
        self.compiled: dict[str, Any] = {}
        self.compile_s: dict[str, float] = {}
        self._lock = threading.Lock()

    def compile(self, bucket: str) -> Any:
        with self._lock:
            if bucket not in self.compiled:
                started = time.perf_counter()
                self.compiled[bucket] = self.lowered[bucket].compile()
                self.compile_s[bucket] = time.perf_counter() - started
            return self.compiled[bucket]

    def __call__(self, bucket: str, *args: Any) -> Any:
        if bucket not in self.lowered:
            raise AgentError(f"no shape bucket {bucket!r}; known: {sorted(self.lowered)}")
        executable = self.compiled.get(bucket) or self.compile(bucket)
        return jax.device_get(executable(self.params, *args))


class AgentRuntime:
    """A loaded agent, ready to serve; build it with ``AgentRuntime.load``, then ``close`` it."""

    def __init__(
        self,
        bundle: Bundle,
        agent: Agent,
        programs: _CompiledBuckets,
        timings: tuple[float, float],
        devices: Sequence[jax.Device],
    ) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.measurement = bundle.measurement
        self.devices = tuple(devices)
        self.device = self.devices[0]
        self.agent = agent
        self._programs = programs
        self._load_s, self._lower_s = timings
        self._latencies: deque[float] = deque(maxlen=4096)
        self._counts = {"calls": 0, "rejected": 0}
        self._count_lock = threading.Lock()
        self.programs_digest = _combine(programs.digests)
        resources = self.manifest.resources
        self._batcher: DynamicBatcher[_Call, Reply] = DynamicBatcher(
            self._run_batch,
            max_batch=resources.max_batch,
            max_wait_s=resources.max_wait_ms / 1000,
            name=f"agent-{self.manifest.name}",
        )

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        compile_all: bool = True,
        devices: Sequence[jax.Device] | None = None,
    ) -> AgentRuntime:
        """Load, check and (with ``compile_all``) compile the bundle at ``path``, to run on
        ``devices`` (default: ``jax.devices()[0]``; several: data-parallel, see
        ``agents.placement``)."""
        devices = tuple(devices) if devices is not None else tuple(jax.devices()[:1])
        started = time.perf_counter()
        bundle = read_bundle(path)
        weights = load_weights(bundle)
        factory = _entry_point(bundle)
        try:
            agent = factory(AgentContext(bundle.manifest, weights, bundle.files))
            spec = agent.program()
        except AgentError:
            raise
        except Exception as exc:
            raise RuntimeLoadError(
                f"agent {bundle.manifest.name!r} failed to build: {exc!r}"
            ) from exc
        loaded = time.perf_counter()
        try:
            programs = _CompiledBuckets(spec, devices)
            lowered = time.perf_counter()
            for bucket in spec.buckets if compile_all else ():
                programs.compile(bucket)
        except Exception as exc:
            raise RuntimeLoadError(
                f"agent {bundle.manifest.name!r} failed to lower or compile: {exc!r}"
            ) from exc
        return cls(bundle, agent, programs, (loaded - started, lowered - loaded), devices)

    def program_digests(self) -> dict[str, str]:
        """SHA-384 (hex) of each shape bucket's StableHLO text, by bucket name."""
        return dict(self._programs.digests)

    def validate(self, request: bytes | str | Mapping[str, Any]) -> Any:
        """Parse and check one input against the limits and input schema (``InputError``)."""
        resources = self.manifest.resources
        try:
            if isinstance(request, Mapping):
                request = _to_json(request)
            value = parse_json(
                request, max_bytes=resources.max_input_bytes, max_depth=resources.max_json_depth
            )
            self.manifest.input_schema.validate(value)
        except InputError:
            with self._count_lock:
                self._counts["rejected"] += 1
            raise
        return value

    def submit(self, request: bytes | str | Mapping[str, Any]) -> Future[Reply]:
        """Validate now (``InputError``), then queue the call; the future gives its ``Reply``."""
        started = time.perf_counter()
        value = self.validate(request)
        return self._batcher.submit(_Call(value, started))

    def invoke(
        self, request: bytes | str | Mapping[str, Any], timeout: float | None = None
    ) -> Reply:
        """Blocking call: ``submit`` and wait for the reply."""
        return self.submit(request).result(timeout)

    async def ainvoke(self, request: bytes | str | Mapping[str, Any]) -> Reply:
        """``invoke`` for asyncio callers: the event loop is not blocked while the batch runs."""
        return await asyncio.wrap_future(self.submit(request))

    def stats(self) -> RuntimeStats:
        latencies = sorted(self._latencies) or [0.0]
        return RuntimeStats(
            device=f"{self.device.platform}:{self.device.device_kind}"
            + (f" x{len(self.devices)}" if len(self.devices) > 1 else ""),
            load_s=self._load_s,
            lower_s=self._lower_s,
            compile_s=dict(self._programs.compile_s),
            calls=self._counts["calls"],
            rejected=self._counts["rejected"],
            batches=self._batcher.batches,
            latency_ms_p50=1000 * latencies[len(latencies) // 2],
            latency_ms_p95=1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            latency_ms_mean=1000 * statistics.fmean(latencies),
        )

    def close(self) -> None:
        self._batcher.close()

    def __enter__(self) -> AgentRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run_batch(self, calls: Sequence[_Call]) -> list[Reply]:
        try:
            outputs = self.agent.run([call.value for call in calls], self._programs)
        except AgentError:
            raise
        except Exception as exc:
            raise AgentRunError(f"agent {self.manifest.name!r} failed: {exc!r}") from exc
        if len(outputs) != len(calls):
            raise OutputError(f"agent returned {len(outputs)} outputs for {len(calls)} inputs")
        decimals = self.manifest.resources.float_decimals
        replies = []
        for call, output in zip(calls, outputs, strict=True):
            value = canonicalize(output, decimals)
            try:
                self.manifest.output_schema.validate(value)
            except InputError as exc:
                raise OutputError(
                    f"agent output violates its output schema: {exc.message}"
                ) from None
            finished = time.perf_counter()
            self._latencies.append(finished - call.started)
            replies.append(
                Reply(
                    output=value,
                    body=dump_canonical(value),
                    agent_measurement=self.measurement.hex,
                    programs_digest=self.programs_digest,
                    latency_s=finished - call.started,
                )
            )
        with self._count_lock:
            self._counts["calls"] += len(calls)
        return replies


def _entry_point(bundle: Bundle) -> Callable[[AgentContext], Agent]:
    """Execute the entry module from the measured bytes and return its factory."""
    manifest = bundle.manifest
    relative = manifest.entry_module.replace(".", "/") + ".py"
    source = bundle.files.get(relative)
    if source is None:
        raise BundleError(f"entry module {relative!r} is not a file of the bundle")
    name = f"_enclava_agent_{manifest.name.replace('-', '_')}_{bundle.measurement.hex[:16]}"
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__file__ = str(bundle.root / relative)
        sys.modules[name] = module
        try:
            code = compile(source, module.__file__, "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102 - runs exactly the measured source bytes
        except Exception as exc:
            del sys.modules[name]
            raise RuntimeLoadError(f"entry module {relative!r} failed to import: {exc!r}") from exc
    factory = getattr(module, manifest.entry_callable, None)
    if not callable(factory):
        raise RuntimeLoadError(
            f"entry {manifest.entry_module}:{manifest.entry_callable} is not callable"
        )
    return cast(Callable[[AgentContext], Agent], factory)


def _combine(digests: Mapping[str, str]) -> str:
    """SHA-384 over the sorted ``name=hex`` lines of all buckets: the whole program set."""
    lines = "".join(f"{name}={digest}\n" for name, digest in sorted(digests.items()))
    return hashlib.sha384(lines.encode("utf-8")).hexdigest()


def _to_json(value: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"input is not JSON-serialisable: {exc}") from None
