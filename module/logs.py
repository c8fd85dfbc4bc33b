"""Logging: to stdout (line-buffered, viam-server reads it line by line) until Ready connects to the parent, then
also through RobotService.Log, one entry per request, level mapped to the four names viam-server accepts."""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import Final

from google.protobuf import timestamp_pb2

from module.gen.common.v1 import common_pb2
from module.parent import ParentClient
from module.resource.structs import dict_to_struct

_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
                  "error": logging.ERROR}
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


class ParentLogHandler(logging.Handler):
    """Sends records to the parent from a background thread, so logging never blocks a request.

    When the parent cannot take a record it goes to stderr instead; when the queue is full records are dropped
    (and counted) rather than letting memory grow.
    """

    def __init__(self, parent: ParentClient, capacity: int = 1000) -> None:
        super().__init__()
        self._parent = parent
        self._queue: queue.Queue[logging.LogRecord | None] = queue.Queue(capacity)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="parent-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (record := self._queue.get()) is not None:
            timestamp = timestamp_pb2.Timestamp()
            timestamp.FromNanoseconds(int(record.created * 1e9))
            entry = common_pb2.LogEntry(
                level=_viam_level(record.levelno), time=timestamp, logger_name=record.name.replace(".", "/"),
                message=f"{record.filename}:{record.lineno}\t{record.getMessage()}",
                caller=dict_to_struct({"Defined": True, "File": record.pathname, "Function": record.funcName,
                                       "Line": record.lineno}))
            try:
                self._parent.log(entry)
            except Exception:  # noqa: BLE001 - the parent is gone or busy: keep the record on stderr
                sys.stderr.write(logging.Formatter(FORMAT).format(record) + "\n")

    def close(self, flush_timeout: float = 0.5) -> None:
        """Send what is queued (up to ``flush_timeout`` seconds: shutdown must stay within viam-server's SIGTERM
        budget), then stop the sender. Records emitted just before SIGTERM (e.g. "removed ...") are not lost."""
        try:
            self._queue.put(None, timeout=flush_timeout)
        except queue.Full:
            pass
        self._thread.join(flush_timeout)
        super().close()
