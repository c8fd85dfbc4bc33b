"""Label files: one label per line, line ``i`` naming class (or output index) ``i``."""

from __future__ import annotations

import os
import re
import stat

from module.errors import ConfigError

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def parse_labels(data: bytes) -> tuple[str, ...]:
    """Parse the contents of a label file.

    The bytes are decoded as UTF-8 (a leading byte-order mark is dropped, invalid bytes become U+FFFD, so this
    never raises). Lines may end in LF, CRLF or CR; each line is stripped of surrounding whitespace.

    Trailing blank lines are dropped, but a blank line *inside* the file keeps its position and becomes ``""``.
    Label ``i`` must stay line ``i`` because models index classes by position: the RDK's parser skipped blank
    lines, which shifted every later label by one and silently mislabelled results.

    A file made of a single line that contains commas is split on the commas (the RDK accepted that format).

    Args:
        data: The raw file contents.

    Returns:
        The labels, in file order.
    """
    text = data.decode("utf-8-sig", errors="replace")
    lines = [line.strip() for line in _LINE_BREAK.split(text)]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) == 1 and "," in lines[0]:
        lines = [part.strip() for part in lines[0].split(",")]
        while lines and not lines[-1]:
            lines.pop()
    return tuple(lines)


def read_label_file(path: str) -> tuple[str, ...]:
    """Read and parse a label file.

    Args:
        path: Path of the file.

    Returns:
        The labels (see :func:`parse_labels`).

    Raises:
        ConfigError: The file is missing, unreadable or holds no labels; the message names the path.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read (not /dev/zero).
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError(f"label file {path!r} is not a regular file")
            data = handle.read()
    except FileNotFoundError as exc:
        raise ConfigError(f"label file {path!r} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"label file {path!r} cannot be read: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a NUL character in the path
        raise ConfigError(f"label file {path!r} is not a valid path: {exc}") from None
    labels = parse_labels(data)
    if not labels:
        raise ConfigError(f"label file {path!r} is empty")
    return labels
