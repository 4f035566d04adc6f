"""How the long-running commands log (`enclava worker run`, `gateway serve`, `attest serve`):
`--log-format text|json` (env `ENCLAVA_LOG_FORMAT`) and `--log-level` (env `ENCLAVA_LOG_LEVEL`).

JSON is one object per line on stderr, for log shippers:

    {"ts": "2025-01-02T03:04:05.678Z", "level": "info", "logger": "enclave.worker.process",
     "message": "fulfilled request 7 of sum", "request_id": "...", "agent": "sum", ...}

`ts` is RFC 3339 in UTC with milliseconds; `request_id` is the id of the HTTP request being
handled (`attestation.service.request_id`), present only inside one; every `extra={...}` field
of the call is a field of the object (the libraries log identifiers this way: agent, contract,
chain request id, tx hash, error code; never keys, inputs, outputs or envelopes); a traceback is
one `exc` string. Uvicorn's access lines also carry `client`, `method`, `path` and `status`.

Only this layer formats: the packages log with `logging` and set the request id, and the
commands pick the format. Uvicorn's loggers are made to propagate to the root handler, so its
startup and access lines come out in the same format.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TextIO

import typer

from attestation.service.request_id import current_request_id

__all__ = [
    "JsonFormatter",
    "LogFormat",
    "LogFormatOption",
    "LogLevel",
    "LogLevelOption",
    "adopt_uvicorn_loggers",
    "configure_logging",
]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_DROPPED = frozenset({"color_message"})  # uvicorn's ANSI-coloured copy of the message
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(envvar="ENCLAVA_LOG_FORMAT", help="Log lines as text or JSON (one per line)."),
]
LogLevelOption = Annotated[
    LogLevel, typer.Option(envvar="ENCLAVA_LOG_LEVEL", help="Least severe level logged.")
]


class JsonFormatter(logging.Formatter):
    """One JSON object per record (fields in the module docstring). `request_id` returns the
    current HTTP request's id or None; values JSON cannot hold are written as `str()`."""

    def __init__(self, request_id: Callable[[], str | None] = current_request_id) -> None:
        super().__init__()
        self._request_id = request_id

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "ts": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = self._request_id()
        if request_id is not None:
            doc["request_id"] = request_id
        if record.name == "uvicorn.access":
            doc.update(_access_fields(record.args))
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _DROPPED and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def _access_fields(args: object) -> dict[str, object]:
    """Uvicorn's access line arguments, named: (client, method, path, http_version, status)."""
    if isinstance(args, tuple) and len(args) == len(_ACCESS_FIELDS):
        return dict(zip(_ACCESS_FIELDS, args, strict=True))
    return {}


def configure_logging(
    log_format: LogFormat, level: LogLevel, *, stream: TextIO | None = None
) -> logging.Handler:
    """Send every log record at `level` or above to `stream` (stderr) in `log_format`, replacing
    the root logger's handlers, and adopt uvicorn's loggers. Returns the handler."""
    handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    formatter = JsonFormatter() if log_format is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    adopt_uvicorn_loggers()
    return handler


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stderr` as it is when a record is emitted, not when configured: a caller
    that swaps stderr (a test runner, a daemon wrapper) must not leave a handler on a closed
    stream."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def adopt_uvicorn_loggers() -> None:
    """Undo what a `uvicorn.Config` built with its default `log_config` did to uvicorn's loggers
    (own handlers, no propagation, own level), so they follow the root configuration. Call it
    after creating such a Config; servers created with `log_config=None` need nothing."""
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
