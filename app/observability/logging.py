"""Loguru set-up: app.log (everything), api.log (API + services), error.log (errors).

Secrets never reach a file: every record passes `redact()` before it is rendered, once, into
the line all sinks write (`_patch`). One process (`python main.py`, tests) writes the files
through enqueued sinks, so writing never blocks the event loop. Under gunicorn the master
owns the files (`start_worker_relay`): right after each fork the worker's sinks are replaced
by one that relays its rendered lines to the master over a Unix datagram socket
(`app.observability.log_relay`), so one process rotates each file and a killed worker holds no lock
that another process could wait on.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from app.core.config import LogFormat, Settings
from app.core.redact import redact_api_keys, redact_urls
from app.observability.log_relay import LogRelay, RelayedLine

_SECRET_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[REDACTED]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), "[REDACTED_JWT]"),
    (
        re.compile(
            r"(?i)([\"']?(?:password|new_password|current_password|refresh_token|access_token|"
            r"api[_-]?key|secret(?:_key)?|authorization|token|ticket)[\"']?\s*[:=]\s*)"
            r"(?!\*\*\*(?:[\s,&}\"']|$))"  # a URL's display form already masked it
            r"(\"[^\"]*\"|'[^']*'|[^\s,&}]+)"
        ),
        r"\1[REDACTED]",
    ),
    (re.compile(r"\b(sk|sk-ant|sk-proj)-[A-Za-z0-9_-]{8,}"), "[REDACTED_KEY]"),
]
API_LOGGER_PREFIXES = ("app.api", "app.services", "app.main", "api")
# HTTP clients (httpx2 under the MCP client, httpx) log every request at INFO ("HTTP Request:
# POST ..."): one line per MCP call and health probe. They are DEBUG lines here.
REQUEST_LINE_LOGGERS = ("httpx", "httpx2")
_INTERNAL_EXTRA = frozenset({"_line", "_relayed", "channel"})


@dataclass
class _Sinks:
    """What `configure_logging` installed in this process (children inherit it by fork)."""

    settings: Settings
    structured: bool
    levelno: int  # the lowest level any sink writes


_CONFIGURED_PID: int | None = None
_SINKS: _Sinks | None = None
_RELAY: LogRelay | None = None
_FORWARDING = False  # this process is a worker: its one sink relays to the master


def redact(text: str) -> str:
    """Remove tokens, passwords and keys from a log message (and credentials from URLs)."""
    text = redact_api_keys(redact_urls(text))
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _fields(record: Any) -> dict[str, Any]:
    """The structured fields of a (redacted) record, with its exception as text."""
    payload: dict[str, Any] = {
        "ts": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": record["name"],
        "msg": record["message"],
        "pid": record["process"].id,
    }
    payload.update({k: v for k, v in record["extra"].items() if k not in _INTERNAL_EXTRA})
    if record["exception"] is not None:
        exc_type, exc_value, exc_tb = record["exception"]
        payload["exception"] = redact(
            "".join(traceback.format_exception(exc_type, exc_value, exc_tb))
        )
    return payload


def _render(record: Any, payload: dict[str, Any]) -> str:
    """`payload` as one JSON object, or as a human line for `LOG_FORMAT=simple`."""
    if _SINKS is None or _SINKS.structured:
        return json.dumps(payload, default=str, ensure_ascii=False)
    time = record["time"]
    text = (
        f"{time:%Y-%m-%d %H:%M:%S}.{time.microsecond // 1000:03d} | {record['level'].name:<8}"
        f" | {record['process'].id} | {record['name']}:{record['line']} | {payload['msg']}"
    )
    exception = payload.get("exception")
    return f"{text}\n{str(exception).rstrip()}" if exception else text


def _clip(text: str, limit: int) -> str:
    """Keep the start and the end of `text` (a traceback's last lines say the most)."""
    cut = len(text) - limit
    head = limit // 2
    return f"{text[:head]}\n[... {cut} characters cut ...]\n{text[len(text) - (limit - head) :]}"


def render_line(record: Any, limit: int | None = None) -> str:
    """The record as one line (JSON or simple), shortened to `limit` bytes when given."""
    payload = _fields(record)
    line = _render(record, payload)
    budget = limit
    while limit is not None and budget is not None and len(line.encode()) > limit:
        budget //= 2
        if budget < 64:  # even the short fields do not fit: keep only what identifies it
            core = {key: payload[key] for key in ("ts", "level", "logger", "pid")}
            return _render(record, {**core, "msg": "[log line too large to relay]"})
        payload = {
            key: _clip(value, budget) if isinstance(value, str) and len(value) > budget else value
            for key, value in payload.items()
        }
        line = _render(record, payload)
    return line


def _patch(record: Any) -> None:
    """Redact the record, then render the line every sink writes (a relayed line as is)."""
    extra = record["extra"]
    relayed = extra.get("_relayed")
    if isinstance(relayed, RelayedLine):  # a worker's line, redacted and rendered there
        record["name"] = relayed.logger
        extra["_line"] = relayed.line
        return
    record["message"] = redact(record["message"])
    for key, value in list(extra.items()):
        if isinstance(value, str):
            extra[key] = redact(value)
    extra["_line"] = render_line(record)


def _line_format(_record: Any) -> str:
    """A format function, so loguru appends no exception of its own."""
    return "{extra[_line]}\n"


def _is_api(record: Any) -> bool:
    """api.log takes the access lines and the API and service loggers."""
    name = record["name"] or ""
    return record["extra"].get("channel") == "api" or name.startswith(API_LOGGER_PREFIXES)


class InterceptHandler(logging.Handler):
    """Route stdlib logging (uvicorn, gunicorn, SQLAlchemy, mcp, httpx) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one stdlib record with its level and caller depth."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _intercept_stdlib(level: str) -> None:
    """Send stdlib logging to loguru and quieten chatty libraries.

    Records below LOG_LEVEL are dropped by stdlib itself, before a record is built: a root
    level of 0 would make every library's debug call pay for a record and a frame walk, and
    makes uvicorn wrap the app in its per-message TRACE logger."""
    threshold = logging.getLevelName(level.upper())
    threshold = threshold if isinstance(threshold, int) else 5  # TRACE (loguru only)
    logging.basicConfig(handlers=[InterceptHandler()], level=threshold, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn", "gunicorn.error"):
        std = logging.getLogger(name)
        std.handlers = [InterceptHandler()]
        std.propagate = False
        std.setLevel(threshold)
    logging.getLogger("uvicorn.access").disabled = True  # our own access line replaces it
    for noisy in ("sqlalchemy.engine", "httpcore", "httpcore2", "aiosqlite", "asyncio", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # the S3 client's debug lines carry the endpoint URL (a secret: it may hold credentials)
    # and signed request headers; Pillow's trace every chunk of every image it opens
    for noisy in ("botocore", "aiobotocore", "s3transfer", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in REQUEST_LINE_LOGGERS:
        std = logging.getLogger(name)
        std.setLevel(threshold)
        std.filters = [f for f in std.filters if not isinstance(f, DemoteToDebug)]
        std.addFilter(DemoteToDebug(threshold))


class DemoteToDebug(logging.Filter):
    """Log a library's INFO lines at DEBUG (kept only when LOG_LEVEL is DEBUG or lower)."""

    def __init__(self, threshold: int) -> None:
        """Drop what ends up below `threshold` (LOG_LEVEL) before it reaches loguru."""
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote INFO to DEBUG; keep the record only if LOG_LEVEL still wants it."""
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.threshold


def _install_sinks(settings: Settings, *, enqueue: bool) -> None:
    """stderr and the three files, replacing any sinks this process had."""
    global _SINKS
    logger.remove()
    logger.configure(patcher=_patch)
    level = settings.log_level.upper()
    log_dir = Path(settings.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {
        "rotation": settings.log_rotation,
        "retention": settings.log_retention,
        "compression": settings.log_compression,
        "enqueue": enqueue,
        "encoding": "utf-8",
        "format": _line_format,
        "diagnose": False,  # diagnose would print local variables: passwords, tokens
    }
    stderr: dict[str, Any] = {"colorize": False, "enqueue": enqueue, "diagnose": False}
    logger.add(sys.stderr, level=level, format=_line_format, **stderr)
    logger.add(log_dir / "app.log", level=level, **common)
    logger.add(log_dir / "api.log", level=level, filter=_is_api, **common)
    logger.add(log_dir / "error.log", level="ERROR", **common)
    _SINKS = _Sinks(
        settings=settings,
        structured=settings.log_format is LogFormat.structured,
        levelno=min(logger.level(level).no, logger.level("ERROR").no),
    )


def configure_logging(settings: Settings, *, worker: bool = False) -> None:
    """Install the three file sinks and stderr; idempotent per process.

    In a process forked by a master that called `start_worker_relay` (a gunicorn worker), or
    with `worker=True`, the files belong to the parent: only stdlib logging is routed here.
    """
    global _CONFIGURED_PID
    if os.getpid() == _CONFIGURED_PID:
        return
    _CONFIGURED_PID = os.getpid()
    # again in a worker: gunicorn's worker class reassigns uvicorn's handlers
    _intercept_stdlib(settings.log_level)
    if worker or (_RELAY is not None and _RELAY.in_worker):
        _become_worker()
        return
    _install_sinks(settings, enqueue=True)


def start_worker_relay() -> None:
    """In the gunicorn master, before forking: keep the files here and relay every worker's lines.

    The master has no event loop, so its sinks write directly: no loguru queue (whose lock
    would be shared with the children) is ever inherited by a worker.
    """
    global _RELAY
    if _RELAY is not None:
        return
    if _SINKS is None:
        raise RuntimeError("configure_logging() must run before start_worker_relay()")
    _install_sinks(_SINKS.settings, enqueue=False)
    _RELAY = LogRelay(emit=_emit_relayed)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def stop_worker_relay() -> None:
    """In the master at exit: write the lines the workers sent before they exited."""
    if _RELAY is not None:
        _RELAY.stop()


def _emit_relayed(item: RelayedLine) -> None:
    """Re-emit a worker's line into the master's sinks (the patcher keeps it as rendered)."""
    bound = logger.bind(channel=item.channel, _relayed=item)
    try:
        bound.log(item.level, "")
    except ValueError:  # a level only the worker registered
        bound.log(item.levelno, "")


def _after_fork_in_child() -> None:
    """Runs in every process the master forks, before it can log a line."""
    if _RELAY is not None:
        _RELAY.close_receiver()
        _become_worker()


def _become_worker() -> None:
    """Swap the inherited file sinks for the relay (right after the fork, before any line)."""
    global _FORWARDING
    if _RELAY is None or _SINKS is None or _FORWARDING or not _RELAY.in_worker:
        return  # no relay: the sinks a parent installed stay (it owns the files)
    logger.remove()
    logger.add(_forward, level=_SINKS.levelno, format=_line_format, diagnose=False)
    _FORWARDING = True


def _forward(message: Any) -> None:
    """The worker's sink: send the rendered line to the master (never waits)."""
    if _RELAY is None:
        return
    record = message.record
    channel = record["extra"].get("channel")
    item = RelayedLine(
        level=record["level"].name,
        levelno=record["level"].no,
        logger=record["name"] or "",
        channel=None if channel is None else str(channel),
        line=record["extra"]["_line"],
    )
    _RELAY.forwarder().send(item, lambda limit: render_line(record, limit))
