"""One error hierarchy for agent bundles and the agent runtime.

Every error carries a stable ``code`` string: the CLI's ``--json`` output and the gateway's 4xx
bodies use it, so it never changes once published. Input errors also inherit ``ValueError`` so that
``except ValueError`` keeps working for callers that do not know this package.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AgentRunError",
    "BundleError",
    "InputError",
    "InputTooLargeError",
    "OutputError",
    "RuntimeClosedError",
    "RuntimeLoadError",
    "WeightMismatchError",
    "WeightMissingError",
]


class AgentError(Exception):
    """Base of every error raised by ``agents``; ``code`` is stable and machine-readable."""

    code = "agent_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BundleError(AgentError):
    """The bundle or its ``agent.toml`` is malformed (unknown keys, bad names, odd files)."""

    code = "bundle_invalid"


class WeightMissingError(BundleError):
    """A weight file named by the manifest cannot be found where its ``source`` points."""

    code = "weight_missing"


class WeightMismatchError(BundleError):
    """A weight's size or SHA-256 differs from the manifest: a changed model is never loaded."""

    code = "weight_mismatch"


class RuntimeLoadError(AgentError):
    """The bundle is well-formed but its entry point could not be imported, built or compiled."""

    code = "runtime_load_failed"


class RuntimeClosedError(AgentError):
    """A call was submitted to a runtime (or batcher) that has been closed."""

    code = "runtime_closed"


class AgentRunError(AgentError):
    """The agent raised while running a batch; every call of that batch gets this error."""

    code = "agent_failed"


class OutputError(AgentError):
    """The agent's output violates its own output schema (a bug in the agent, not the caller)."""

    code = "output_invalid"


class InputError(AgentError, ValueError):
    """The input is malformed or violates the input schema; ``path`` locates the bad value."""

    code = "input_invalid"

    def __init__(self, message: str, *, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class InputTooLargeError(InputError):
    """The input exceeds a limit (bytes, depth, items, string length); refused before any work."""

    code = "input_too_large"
