"""The chain worker: a durable job state (`state`), deterministic assignment among several
workers (`assignment`) and the loop that reads requests and fulfils them (`loop`)."""

from enclave.worker.assignment import assigned_worker, may_take
from enclave.worker.loop import (
    REPLY_KEY_SIZE,
    FulfilmentSigner,
    Peers,
    ServedRuntime,
    StepReport,
    Worker,
    onchain_envelope_context,
    onchain_response_context,
)
from enclave.worker.state import Job, JobState, WorkerState

__all__ = [
    "REPLY_KEY_SIZE",
    "FulfilmentSigner",
    "Job",
    "JobState",
    "Peers",
    "ServedRuntime",
    "StepReport",
    "Worker",
    "WorkerState",
    "assigned_worker",
    "may_take",
    "onchain_envelope_context",
    "onchain_response_context",
]
