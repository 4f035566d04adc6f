"""The chain worker: a durable job state (`state`), deterministic assignment among several
workers (`assignment`) and the loop that reads requests and fulfils them (`loop`)."""

from enclave.worker.assignment import assigned_worker, may_take
from enclave.worker.loop import (
    FulfilmentSigner,
    ServedRuntime,
    StepReport,
    Worker,
    onchain_envelope_context,
)
from enclave.worker.state import Job, JobState, WorkerState

__all__ = [
    "FulfilmentSigner",
    "Job",
    "JobState",
    "ServedRuntime",
    "StepReport",
    "Worker",
    "WorkerState",
    "assigned_worker",
    "may_take",
    "onchain_envelope_context",
]
