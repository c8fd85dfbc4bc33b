"""Reading a file the module was configured with: bounded, regular files only, errors that name the attribute.

Every path in a config (``model_path``, ``label_path``, a label file extracted from a model, an image in the local
runner) comes from a person or a tool and may point anywhere: at a symlink to ``/dev/zero`` (read without end until
the machine runs out of memory), at a FIFO (``open`` waits forever for a writer), at a directory, or at a file far
larger than anything the module could use. :func:`read_config_file` follows links, refuses anything that is not a
regular file before reading a byte of it, and reads at most a limit, so no such path can take the machine down; it
raises ConfigError (INVALID_ARGUMENT) naming the attribute, the path and what to do.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Final

from module.errors import ConfigError

MIB: Final = 1024 * 1024

# A TFLite model is one flatbuffer, which cannot exceed 2 GiB; CPU models are a few kB to a few hundred MB (the
# largest in ../shared/testdata is 6 MB; big language models ship as several files or with external weights). The
# module keeps the whole file in memory (and each interpreter maps it), so 1 GiB is generous for what a robot's CPU
# can run yet stops a mistaken path long before the machine suffers. ``max_model_size_mb`` raises it to 2047.
DEFAULT_MODEL_MAX_BYTES: Final = 1024 * MIB
MODEL_MAX_BYTES_CEILING: Final = 2047 * MIB
MODEL_SIZE_ATTRIBUTE: Final = "max_model_size_mb"
# A label file holds one short line per class: ImageNet-21k's 21,843 labels take about 0.5 MB, Open Images' ~20,000
# classes about 0.4 MB. 16 MiB is 30 times the largest real one and still harmless to hold in memory.
LABEL_MAX_BYTES: Final = 16 * MIB
# The local runner's camera images (JPEG, PNG, BMP, ...): a 50-megapixel BMP is 150 MB; the decoder refuses more pixels.
IMAGE_MAX_BYTES: Final = 256 * MIB


@dataclass(frozen=True, slots=True)
class FileLimit:
    """What a file is for, for messages: the attribute that named it, its kind and the most bytes read from it."""

    attribute: str
    kind: str  # "model", "label file", "image"
    max_bytes: int
    raise_with: str = ""  # the attribute that raises ``max_bytes``, if there is one
    origin: str = ""  # where the path came from when no attribute of this resource named it

    def where(self, path: str) -> str:
        source = self.origin or f"attribute {self.attribute!r}"
        return f"{source}: {self.kind} {path!r}"


def model_limit(max_bytes: int = DEFAULT_MODEL_MAX_BYTES, attribute: str = "model_path") -> FileLimit:
    return FileLimit(attribute, "model", max_bytes, raise_with=MODEL_SIZE_ATTRIBUTE)


def label_limit(attribute: str = "label_path", origin: str = "") -> FileLimit:
    return FileLimit(attribute, "label file", LABEL_MAX_BYTES, origin=origin)


def image_limit(attribute: str) -> FileLimit:
    return FileLimit(attribute, "image", IMAGE_MAX_BYTES)


def read_config_file(path: str, limit: FileLimit) -> bytes:
    """The whole content of the regular file at ``path`` (links followed), at most ``limit.max_bytes`` long.

    Raises:
        ConfigError: missing, unreadable, not a regular file (FIFO, device, socket, directory), or over the limit.
            The message names ``limit.attribute`` and the path. No FIFO or device is ever read, and opening one
            never blocks (O_NONBLOCK).
    """
    where = limit.where(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{where} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be opened: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # a NUL character in the path
        raise ConfigError(f"{where} is not a valid path (it contains a NUL character)") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(f"{where} is {_kind_of(info.st_mode)}, not a regular file")
    if info.st_size > limit.max_bytes:
        os.close(fd)
        raise ConfigError(_too_big(where, info.st_size, limit))
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit.max_bytes + 1)  # the file may have grown since fstat
        except OSError as exc:
            raise ConfigError(f"{where} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit.max_bytes:
        raise ConfigError(_too_big(where, None, limit))
    return data


def _too_big(where: str, size: int | None, limit: FileLimit) -> str:
    has = f"is {size:,} bytes" if size is not None else "grew while it was read"
    hint = (f"; if the file is right, raise the limit with the attribute {limit.raise_with!r} (in MB)"
            if limit.raise_with else "")
    return f"{where} {has}, over the {limit.max_bytes:,}-byte limit for a {limit.kind}{hint}"


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
