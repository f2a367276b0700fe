"""Logs: a readable line on a terminal, one JSON object a line elsewhere, each with the
request id of the current request; one handler (the root's), so no line is written twice."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

request_id_var: ContextVar[str | None] = ContextVar("personae_request_id", default=None)

LogFormat = Literal["auto", "text", "json"]

_STANDARD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
# Probes and scrapes come every few seconds: their access lines are DEBUG, not INFO.
_QUIET_PATHS = ("/healthz", "/readyz", "/metrics")
# uvicorn's start-up lines, said once by Personae's own "serving on" line instead.
_UVICORN_STARTUP = (
    "Started server process",
    "Waiting for application startup",
    "Application startup complete",
    "Uvicorn running on",
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON; extra fields given to the logger are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """One line for a person: time, level, logger, message, then key=value for the
    request id and every extra field (quoted when it holds spaces)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
        fields = {"request_id": request_id_var.get(), **_extras(record)}
        pairs = " ".join(
            f"{key}={_value(value)}" for key, value in fields.items() if value is not None
        )
        line = f"{moment} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line}  {pairs}" if pairs else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class _QuietProbes(logging.Filter):
    """uvicorn's access line for a health check or a metrics scrape becomes DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        path = str(args[2]).split("?", 1)[0] if isinstance(args, tuple) and len(args) > 2 else ""
        if path in _QUIET_PATHS:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class _QuietStartup(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith(_UVICORN_STARTUP):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def json_wanted(log_format: LogFormat, log_json: bool | None, stream: Any = None) -> bool:
    """JSON lines unless a person reads them: `text`/`json` decide; `auto` follows the
    older PERSONAE_LOG_JSON when it is set, else JSON unless stderr is a terminal."""
    if log_format != "auto":
        return log_format == "json"
    if log_json is not None:
        return log_json
    stream = stream or sys.stderr
    return not (hasattr(stream, "isatty") and stream.isatty())


def configure_logging(level: str, *, json_lines: bool) -> None:
    """Set up the root logger once for a process (the CLI calls this, not imports)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Every line reaches the root's one handler once: a library's own handler (uvicorn
    # adds some when given a log config) would write it a second time.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        library.filters.clear()
    logging.getLogger("uvicorn.access").addFilter(_QuietProbes())
    logging.getLogger("uvicorn.error").addFilter(_QuietStartup())
    # Alembic announces its dialect on every schema check (readiness probes): keep it quiet.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def serving_lines(host: str, port: int) -> list[str]:
    """What `personae serve` says once its port listens: the address to open, and for
    an address on every interface, the ones this machine and the local network use."""
    if host not in ("0.0.0.0", "::", ""):
        shown = f"[{host}]" if ":" in host else host
        return [f"Personae is serving on http://{shown}:{port}"]
    lines = [
        f"Personae is serving on every address, port {port}: on this machine "
        f"http://127.0.0.1:{port}"
    ]
    lan = _lan_address()
    if lan:
        lines.append(f"  from another device on your network (a phone): http://{lan}:{port}")
    return lines


def _lan_address() -> str | None:
    """This machine's address on its network: the one the route out would use
    (a UDP socket's connect sends nothing)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address
