"""The gateway's errors: part of the `enclave` hierarchy, each with a stable `code` and the HTTP
status it answers with. Every error answer has the body `{"error": {"code", "message"}}`; bad
input is always a 4xx, never a 5xx.

    EnclaveError
    └── GatewayError
        ├── MalformedRequestError   400  body or parameter malformed (codes: malformed_request,
        │                                invalid_nonce, unsupported_input, ...)
        ├── RequestTooLargeError    413  request_too_large: the body is over the limit
        ├── UnknownAgentError       404  unknown_agent / model_not_found
        ├── UnknownResponseError    404  unknown_response: no signature kept for that id
        ├── UnknownSignerError      404  unknown_signing_address
        ├── OverloadedError         429  overloaded: the concurrent-invocation limit is reached
        ├── AgentFailedError        4xx/5xx  an agent error, with the agent's own code
        ├── AgentTimeoutError       504  agent_timeout
        └── QuoteUnavailableError   503  quote_unavailable: the TEE produced no quote

Agent errors keep their codes (`agents.errors`): `input_invalid` 422, `input_too_large` 413,
`runtime_closed` 503, anything else (`agent_failed`, `output_invalid`) 500. When the request
was encrypted, an agent error's message is withheld (it could quote the input): the code stays.
"""

from __future__ import annotations

from agents.errors import AgentError, InputError, InputTooLargeError, RuntimeClosedError
from enclave.errors import EnclaveError, EnvelopeError, TeeUnavailableError

__all__ = [
    "AgentFailedError",
    "AgentTimeoutError",
    "GatewayError",
    "MalformedRequestError",
    "OverloadedError",
    "QuoteUnavailableError",
    "RequestTooLargeError",
    "UnknownAgentError",
    "UnknownResponseError",
    "UnknownSignerError",
    "http_status",
]


class GatewayError(EnclaveError):
    """An error the gateway answers with; `status` is its HTTP status."""

    code = "gateway_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class MalformedRequestError(GatewayError, ValueError):
    code = "malformed_request"
    status = 400


class RequestTooLargeError(GatewayError, ValueError):
    code = "request_too_large"
    status = 413


class UnknownAgentError(GatewayError, LookupError):
    code = "unknown_agent"
    status = 404


class UnknownResponseError(GatewayError, LookupError):
    code = "unknown_response"
    status = 404


class UnknownSignerError(GatewayError, LookupError):
    code = "unknown_signing_address"
    status = 404


class OverloadedError(GatewayError):
    code = "overloaded"
    status = 429


class AgentTimeoutError(GatewayError):
    code = "agent_timeout"
    status = 504


class QuoteUnavailableError(GatewayError):
    code = "quote_unavailable"
    status = 503


class AgentFailedError(GatewayError):
    """An `agents` error as the gateway answers it: the agent's code, its status."""

    @classmethod
    def from_agent(cls, error: AgentError, *, withhold: bool) -> AgentFailedError:
        message = error.message
        if withhold:
            message = f"the agent refused the input ({error.code}); details withheld because "
            message += "the request was encrypted"
        failed = cls(message, code=error.code)
        failed.status = _agent_status(error)
        return failed


def _agent_status(error: AgentError) -> int:
    if isinstance(error, InputTooLargeError):
        return 413
    if isinstance(error, InputError):
        return 422
    if isinstance(error, RuntimeClosedError):
        return 503
    return 500


def http_status(error: EnclaveError) -> int:
    """The HTTP status of any `enclave` error the gateway may meet."""
    if isinstance(error, GatewayError):
        return error.status
    if isinstance(error, EnvelopeError):
        return 400
    if isinstance(error, TeeUnavailableError):
        return 503
    return 500
