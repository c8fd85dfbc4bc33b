"""Logging: to stdout (line-buffered, viam-server reads it line by line) until Ready connects to the parent, then
also through RobotService.Log, one entry per request, level mapped to the four names viam-server accepts."""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import TYPE_CHECKING, Final, Protocol

from google.protobuf import timestamp_pb2

from module.gen.common.v1 import common_pb2
from module.resource.structs import dict_to_struct

if TYPE_CHECKING:
    from module.parent import ParentClient

_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
                  "error": logging.ERROR}
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def resource_logger_name(api: str, name: str) -> str:
    """The logger of one resource, named as viam-server names its own: ``rdk:service:vision/<name>``.

    The parent shows it verbatim (ParentLogHandler sends names with a ':' unchanged), so the module's lines sit
    next to viam-server's own about the same resource.
    """
    return f"{api}/{name}"


def level_from_arg(text: str | None) -> int:
    return _LEVELS.get((text or "info").lower(), logging.INFO)


def setup_stdout_logging(level: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stdout, force=True)


def _viam_level(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"  # viam-server rejects "critical"
    if levelno >= logging.WARNING:
        return "warn"
    return "info" if levelno >= logging.INFO else "debug"


class LogSink(Protocol):
    def log(self, entry: common_pb2.LogEntry, timeout: float = ...) -> None: ...


def log_entry(record: logging.LogRecord, formatter: logging.Formatter) -> common_pb2.LogEntry:
    """The LogEntry viam-server's RobotService.Log takes for ``record``.

    An exception's traceback goes into ``stack`` and also after the message: viam-server (robot/server/server.go)
    ignores ``stack`` today, and a traceback nobody sees is the problem this solves.
    """
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromNanoseconds(int(record.created * 1e9))
    stack = ""
    if record.exc_info and record.exc_info[0] is not None:
        if not record.exc_text:
            record.exc_text = formatter.formatException(record.exc_info)
        stack = record.exc_text
    elif record.stack_info:
        stack = record.stack_info
    message = f"{record.filename}:{record.lineno}\t{record.getMessage()}" + (f"\n{stack}" if stack else "")
    name = record.name if ":" in record.name else record.name.replace(".", "/")
    return common_pb2.LogEntry(
        level=_viam_level(record.levelno), time=timestamp, logger_name=name, message=message, stack=stack,
        caller=dict_to_struct({"Defined": True, "File": record.pathname, "Function": record.funcName,
                               "Line": record.lineno}))


class ParentLogHandler(logging.Handler):
    """Sends records to the parent from a background thread, so logging never blocks a request.

    When the parent cannot take a record (it is gone, or restarting) the record goes to stderr instead, traceback
    included, where viam-server's capture of the module's output still finds it; when the queue is full records
    are dropped (and counted) rather than letting memory grow.
    """

    def __init__(self, parent: ParentClient | LogSink, capacity: int = 1000) -> None:
        super().__init__()
        self._parent = parent
        self._queue: queue.Queue[logging.LogRecord | None] = queue.Queue(capacity)
        self.dropped = 0
        self.fallbacks = 0
        self._formatter = logging.Formatter(FORMAT)
        self._thread = threading.Thread(target=self._run, name="parent-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            flushed = getattr(record, "flush_event", None)
            if flushed is not None:
                flushed.set()
                continue
            try:
                self._parent.log(log_entry(record, self._formatter))
            except Exception:  # noqa: BLE001 - the parent is gone or busy: keep the record on stderr
                self.fallbacks += 1
                sys.stderr.write(self._formatter.format(record) + "\n")

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until every record queued so far was sent (or written to stderr). Not ``flush``: logging calls
        that at exit, when the sender thread may be gone."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        marker = logging.LogRecord("module.logs", logging.DEBUG, __file__, 0, "", None, None)
        marker.flush_event = done  # _run sets it instead of sending the marker
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return
        done.wait(timeout)

    def close(self, flush_timeout: float = 0.5) -> None:
        """Send what is queued (up to ``flush_timeout`` seconds: shutdown must stay within viam-server's SIGTERM
        budget), then stop the sender. Records emitted just before SIGTERM (e.g. "removed ...") are not lost."""
        try:
            self._queue.put(None, timeout=flush_timeout)
        except queue.Full:
            pass
        self._thread.join(flush_timeout)
        super().close()
