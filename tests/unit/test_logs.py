"""module/logs.py without a process: records reach the parent as viam-server takes them, an exception's traceback
included, and go to stderr when the parent cannot take them."""

from __future__ import annotations

import logging
import threading

import pytest

from module.gen.common.v1 import common_pb2
from module.logs import ParentLogHandler, level_from_arg, resource_logger_name


class FakeParent:
    def __init__(self) -> None:
        self.entries: list[common_pb2.LogEntry] = []
        self.up = True
        self.lock = threading.Lock()

    def log(self, entry: common_pb2.LogEntry, timeout: float = 2.0) -> None:
        if not self.up:
            raise ConnectionError("the parent is gone")
        with self.lock:
            self.entries.append(entry)


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_an_exception_reaches_the_parent_with_its_stack_under_the_resource_logger() -> None:
    parent = FakeParent()
    handler = ParentLogHandler(parent)
    logger = _logger(resource_logger_name("rdk:service:vision", "my.vis"), handler)
    try:
        raise ValueError("bad thing")
    except ValueError as exc:
        logger.error("internal error (error id %s)", "0badcafe", exc_info=exc)
    handler.drain()
    (entry,) = parent.entries
    assert entry.logger_name == "rdk:service:vision/my.vis"  # verbatim: the dot in the name is kept
    assert entry.level == "error"
    assert "Traceback" in entry.stack and "ValueError: bad thing" in entry.stack
    assert "error id 0badcafe" in entry.message and "ValueError: bad thing" in entry.message
    handler.close()


def test_module_loggers_keep_the_sdk_naming_and_levels_map() -> None:
    parent = FakeParent()
    handler = ParentLogHandler(parent)
    logger = _logger("module.mlmodel.pool", handler)
    logger.critical("c")
    logger.warning("w")
    logger.debug("d")
    handler.drain()
    assert [(e.logger_name, e.level, e.stack) for e in parent.entries] == [
        ("module/mlmodel/pool", "error", ""), ("module/mlmodel/pool", "warn", ""), ("module/mlmodel/pool", "debug", "")]
    handler.close()


def test_without_the_parent_records_and_tracebacks_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    parent = FakeParent()
    parent.up = False
    handler = ParentLogHandler(parent)
    logger = _logger("rdk:service:mlmodel/det", handler)
    try:
        raise RuntimeError("lost")
    except RuntimeError:
        logger.exception("internal error (error id 12345678)")
    handler.drain()
    err = capsys.readouterr().err
    assert "error id 12345678" in err and "RuntimeError: lost" in err and "Traceback" in err
    assert handler.fallbacks == 1
    parent.up = True  # back: the next record goes to the parent again
    logger.info("again")
    handler.drain()
    assert [e.message.split("\t")[1] for e in parent.entries] == ["again"]
    handler.close()


def test_level_from_arg() -> None:
    assert level_from_arg("DEBUG") == logging.DEBUG and level_from_arg(None) == logging.INFO
    assert level_from_arg("warn") == logging.WARNING and level_from_arg("bogus") == logging.INFO
