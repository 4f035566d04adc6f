"""Request ids: one per HTTP request, in the logs of everything that request causes and in the
`X-Request-ID` response header, so a caller's report and the server's logs can be matched.

`RequestIdMiddleware` takes the caller's `X-Request-ID` when it is a sane token (1 to 64 of
`[A-Za-z0-9._-]`: nothing that could forge a log line or a header) and makes one otherwise. It is
plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which would run the endpoint in another
task and add a hop to the verify hot path.

The id lives in a `ContextVar`: asyncio copies it into tasks and Starlette's thread pool, so code
that logs never passes it along. Log formatters read it with `current_request_id()` (the
`enclava` CLI's JSON formatter does). The worker gateway (`enclave.gateway`) uses this module too,
so a process that runs both has one request id, one header and one log field. Responses that
Starlette's outermost error handler writes for unhandled exceptions (500) do not carry the header.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestIdMiddleware",
    "accept_request_id",
    "current_request_id",
]

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_request_id: ContextVar[str | None] = ContextVar("enclava_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the HTTP request being handled in this context, or None outside one."""
    return _request_id.get()


def accept_request_id(offered: str | None) -> str:
    """`offered` when it is a sane token, otherwise a fresh random id (32 hex digits)."""
    if offered is not None and _SANE.fullmatch(offered):
        return offered
    return secrets.token_hex(16)


class RequestIdMiddleware:
    """Give each HTTP request an id (see the module docstring); other scopes pass through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(_offered(scope))
        echoed = (_HEADER_KEY, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


def _offered(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == _HEADER_KEY:
            return bytes(value).decode("latin-1")
    return None
