"""Reading a request body under a size cap, for every FastAPI app of the project (the
attestation service here, the enclave's gateway too): refused as soon as it passes the cap,
before anything parses it. Each app passes its own typed errors."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

__all__ = ["read_capped_body"]


async def read_capped_body(
    request: Request,
    limit: int,
    *,
    too_large: Callable[[str], Exception],
    malformed: Callable[[str], Exception],
) -> bytes:
    """The body, or `too_large(message)` once it passes `limit` bytes (by its declared
    Content-Length or while streaming); `malformed(message)` for a non-numeric Content-Length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise malformed("Content-Length is not a number")
        if int(declared) > limit:
            raise too_large(f"the body is {declared} bytes, more than {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"the body is more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
