"""PCD (Point Cloud Data, v0.7) files: read ``ascii``, ``binary`` and ``binary_compressed``; write ``binary``.

Pure helpers (no gRPC). Units are the file's: Viam cameras send PCD in metres (rdk ``pointcloud/pointcloud_file.go``
converts its millimetres to metres on write), and so does :func:`write_pcd`.

What is read: the fields ``x y z`` (float32 or float64, count 1) and, when present, ``rgb`` or ``rgba`` (4 bytes,
any TYPE: the bits are the packed colour ``0x00RRGGBB``, whether the writer declared them F as PCL does or I/U as
rdk does). Every other field (normals, intensity, padding ``_``) is skipped. Organised clouds (HEIGHT > 1) are read
the same way, row by row; points with a non-finite coordinate (the holes of an organised cloud) are dropped.

Bounded: the header is at most :data:`MAX_HEADER_BYTES`; a header that promises more points than the data can
hold is refused before anything is allocated (InvalidInputError), and so is a cloud above ``max_points``
(ResourceExhaustedError). ``binary_compressed`` data is LZF (liblzf's format); the decoder here checks every
back reference and length and never writes past the size the file declares.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from module.errors import InvalidInputError, ResourceExhaustedError

MIME_PCD: Final = "pointcloud/pcd"
MAX_POINTS: Final = 10_000_000
"""Default limit on POINTS: 10 million points is 120 MB of float32 coordinates."""
MAX_HEADER_BYTES: Final = 65_536
MAX_FIELDS: Final = 256
LZF_MAX_RATIO: Final = 132
"""Most bytes one LZF input byte can expand to (a 2-byte back reference copies up to 264 bytes): a
``binary_compressed`` block claiming more is refused before its buffer is allocated."""

_HEADER_KEYS: Final = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_DATA_KINDS: Final = ("ascii", "binary", "binary_compressed")
_NUMPY_TYPES: Final = {("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "<i1", ("I", 2): "<i2", ("I", 4): "<i4",
                       ("I", 8): "<i8", ("U", 1): "<u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"}
_COLOUR_FIELDS: Final = ("rgb", "rgba")
_SIZES: Final = struct.Struct("<II")


class PCDError(InvalidInputError):
    """The bytes are not a PCD file this module can read; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class PointCloud:
    """Points in the file's units (metres for Viam), finite only.

    Attributes:
        xyz: (N, 3) float32 coordinates.
        rgb: (N,) uint32 packed colours ``0x00RRGGBB``, or None when the file has no colour field.
    """

    xyz: NDArray[np.float32]
    rgb: NDArray[np.uint32] | None = None

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def subset(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> PointCloud:
        """The points selected by a boolean mask or an index array, colours alongside."""
        return PointCloud(self.xyz[keep], None if self.rgb is None else self.rgb[keep])


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    size: int
    type: str
    count: int

    @property
    def numpy_type(self) -> str:
        return _NUMPY_TYPES[(self.type, self.size)]

    @property
    def nbytes(self) -> int:
        return self.size * self.count


@dataclass(frozen=True, slots=True)
class Header:
    fields: tuple[Field, ...]
    width: int
    height: int
    points: int
    data: str
    length: int  # bytes of header, including the DATA line

    @property
    def point_size(self) -> int:
        return sum(f.nbytes for f in self.fields)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def offset(self, name: str) -> int:
        """Byte offset of ``name`` within one point (binary) or of its column (binary_compressed, per point)."""
        total = 0
        for f in self.fields:
            if f.name == name:
                return total
            total += f.nbytes
        raise KeyError(name)

    def colour_field(self) -> Field | None:
        return next((f for f in self.fields if f.name in _COLOUR_FIELDS), None)


# --- reading -------------------------------------------------------------------------------------------------------


def read_pcd(data: bytes, *, max_points: int = MAX_POINTS) -> PointCloud:
    """Parse a PCD file.

    Args:
        data: The whole file.
        max_points: Refuse files whose header declares more points (ResourceExhaustedError).

    Returns:
        The finite points, with colours when the file has ``rgb``/``rgba``.

    Raises:
        PCDError: Malformed header, unsupported field types, or data shorter than the header promises.
        ResourceExhaustedError: More than ``max_points`` points.
    """
    header = parse_header(data)
    if header.points > max_points:
        raise ResourceExhaustedError(f"point cloud has {header.points:,} points; this module reads at most {max_points:,}")
    body = memoryview(data)[header.length:]
    if header.data == "ascii":
        xyz, rgb = _read_ascii(header, bytes(body))
    elif header.data == "binary":
        xyz, rgb = _read_binary(header, body)
    else:
        xyz, rgb = _read_compressed(header, body)
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        xyz = xyz[finite]
        rgb = None if rgb is None else rgb[finite]
    return PointCloud(np.ascontiguousarray(xyz, dtype=np.float32), None if rgb is None else np.ascontiguousarray(rgb))


def parse_header(data: bytes) -> Header:
    """The header of a PCD file, checked: x, y and z present; sizes, types and counts consistent; POINTS equal to
    WIDTH * HEIGHT. Lines may come in any order; ``#`` starts a comment."""
    end = data.find(b"\nDATA", 0, MAX_HEADER_BYTES)
    if data.startswith(b"DATA"):
        end = -1
    elif end < 0:
        raise PCDError(f"not a PCD file: no DATA line in the first {MAX_HEADER_BYTES:,} bytes")
    line_end = data.find(b"\n", end + 1)
    if line_end < 0:
        line_end = len(data)
    try:
        text = data[: line_end].decode("ascii")
    except UnicodeDecodeError:
        raise PCDError("PCD header is not ASCII text") from None
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, *rest = line.split()
        key = key.upper()
        if key not in _HEADER_KEYS:
            raise PCDError(f"PCD header: unknown line {raw.strip()!r}; expected one of {', '.join(_HEADER_KEYS)}")
        values[key] = rest
    fields = _fields(values)
    width = _count(values, "WIDTH")
    height = _count(values, "HEIGHT", default=1)
    points = _count(values, "POINTS", default=width * height)
    if points != width * height:
        raise PCDError(f"PCD header: POINTS {points} does not equal WIDTH * HEIGHT = {width} * {height}")
    kind = (values.get("DATA") or [""])[0].lower()
    if kind not in _DATA_KINDS:
        raise PCDError(f"PCD header: DATA must be one of {', '.join(_DATA_KINDS)}, got {kind!r}")
    return Header(fields=fields, width=width, height=height, points=points, data=kind, length=min(line_end + 1, len(data)))


def _fields(values: dict[str, list[str]]) -> tuple[Field, ...]:
    names = values.get("FIELDS")
    if not names:
        raise PCDError("PCD header: no FIELDS line")
    if len(names) > MAX_FIELDS:
        raise PCDError(f"PCD header: {len(names)} fields; at most {MAX_FIELDS} are supported")
    sizes = _numbers(values, "SIZE", len(names))
    types = [t.upper() for t in values.get("TYPE", [])]
    if len(types) != len(names):
        raise PCDError(f"PCD header: TYPE has {len(types)} entries for {len(names)} fields")
    counts = _numbers(values, "COUNT", len(names)) if "COUNT" in values else [1] * len(names)
    fields = tuple(Field(n.lower(), s, t, c) for n, s, t, c in zip(names, sizes, types, counts))
    for f in fields:
        if (f.type, f.size) not in _NUMPY_TYPES:
            raise PCDError(f"PCD header: field {f.name!r} has TYPE {f.type} SIZE {f.size}; supported: F 4/8, I and U 1/2/4/8")
        if f.count < 1:
            raise PCDError(f"PCD header: field {f.name!r} has COUNT {f.count}; must be at least 1")
    for axis in "xyz":
        found = next((f for f in fields if f.name == axis), None)
        if found is None:
            raise PCDError(f"PCD header: no {axis!r} field (FIELDS {' '.join(names)})")
        if found.type != "F" or found.count != 1:
            raise PCDError(f"PCD header: field {axis!r} must be a float (TYPE F) with COUNT 1, got TYPE {found.type} "
                           f"COUNT {found.count}")
    colour = next((f for f in fields if f.name in _COLOUR_FIELDS), None)
    if colour is not None and (colour.size != 4 or colour.count != 1):
        raise PCDError(f"PCD header: field {colour.name!r} must be 4 bytes with COUNT 1 (packed colour)")
    return fields


def _numbers(values: dict[str, list[str]], key: str, length: int) -> list[int]:
    tokens = values.get(key)
    if tokens is None or len(tokens) != length:
        raise PCDError(f"PCD header: {key} must have {length} entries (one per field), got {len(tokens or [])}")
    try:
        return [int(t) for t in tokens]
    except ValueError:
        raise PCDError(f"PCD header: {key} entries must be integers, got {' '.join(tokens)}") from None


def _count(values: dict[str, list[str]], key: str, default: int | None = None) -> int:
    tokens = values.get(key)
    if tokens is None:
        if default is None:
            raise PCDError(f"PCD header: no {key} line")
        return default
    try:
        value = int(tokens[0]) if len(tokens) == 1 else -1
    except ValueError:
        value = -1
    if value < 0:
        raise PCDError(f"PCD header: {key} must be one integer >= 0, got {' '.join(tokens)!r}")
    return value


def _read_ascii(header: Header, body: bytes) -> tuple[NDArray[np.floating], NDArray[np.uint32] | None]:
    per_point = sum(f.count for f in header.fields)
    # Every value takes at least two bytes (a digit and a separator): refuse absurd counts before splitting.
    if header.points * per_point > (len(body) + 1) // 2:
        raise PCDError(f"PCD data too short: header declares {header.points:,} points of {per_point} values, the ascii "
                       f"data has {len(body):,} bytes")
    tokens = body.split()
    if len(tokens) != header.points * per_point:
        raise PCDError(f"PCD ascii data has {len(tokens):,} values; header declares {header.points:,} points of "
                       f"{per_point} values = {header.points * per_point:,}")
    try:
        table = np.array(tokens, dtype=np.float64).reshape(header.points, per_point)
    except ValueError:
        raise PCDError("PCD ascii data holds a value that is not a number") from None
    columns = {}
    start = 0
    for f in header.fields:
        columns[f.name] = start
        start += f.count
    xyz = table[:, [columns["x"], columns["y"], columns["z"]]]
    colour = header.colour_field()
    rgb = None
    if colour is not None:
        rgb = _ascii_colours(table[:, columns[colour.name]], colour.type)
    return xyz, rgb


def _ascii_colours(values: NDArray[np.float64], kind: str) -> NDArray[np.uint32]:
    """Packed colours from ascii values. PCL and rdk print the packed integer (``4278190335``) even for a TYPE F
    field; other writers print the float whose bits are the colour, which is always below 1 (a denormal, since the
    top byte of ``0x00RRGGBB`` is 0). Values below 1 in a TYPE F field are therefore read as float bits."""
    finite = np.where(np.isfinite(values), values, 0.0)
    as_integer = (np.clip(finite, 0, 0xFFFFFFFF).astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    if kind != "F":
        return as_integer
    as_bits = finite.astype(np.float32).view(np.uint32)
    return np.where(np.abs(finite) < 1.0, as_bits, as_integer).astype(np.uint32)


def _read_binary(header: Header, body: memoryview) -> tuple[NDArray[np.floating], NDArray[np.uint32] | None]:
    size = header.point_size
    if len(body) < header.points * size:
        raise PCDError(f"PCD data too short: header declares {header.points:,} points of {size} bytes "
                       f"= {header.points * size:,} bytes, the data has {len(body):,}")
    records = np.frombuffer(body, dtype=np.uint8, count=header.points * size).reshape(header.points, size)

    def column(f: Field) -> NDArray[Any]:
        start = header.offset(f.name)
        values: NDArray[Any] = records[:, start:start + f.size].copy().view(f.numpy_type)[:, 0]
        return values

    xyz = np.stack([column(_required(header, axis)) for axis in "xyz"], axis=1)
    colour = header.colour_field()
    rgb = None if colour is None else records[:, header.offset(colour.name):header.offset(colour.name) + 4].copy().view("<u4")[:, 0]
    return xyz, None if rgb is None else rgb.astype(np.uint32)


def _read_compressed(header: Header, body: memoryview) -> tuple[NDArray[np.floating], NDArray[np.uint32] | None]:
    if len(body) < _SIZES.size:
        raise PCDError("PCD binary_compressed data too short: no compressed/uncompressed size words")
    compressed_size, raw_size = _SIZES.unpack_from(body)
    expected = header.points * header.point_size
    if raw_size != expected:
        raise PCDError(f"PCD binary_compressed: uncompressed size {raw_size:,} bytes does not match the header's "
                       f"{header.points:,} points of {header.point_size} bytes = {expected:,}")
    if compressed_size > len(body) - _SIZES.size:
        raise PCDError(f"PCD binary_compressed: compressed size {compressed_size:,} bytes, only "
                       f"{len(body) - _SIZES.size:,} follow")
    if raw_size > compressed_size * LZF_MAX_RATIO + 32:
        raise PCDError(f"PCD binary_compressed: {compressed_size:,} compressed bytes cannot expand to {raw_size:,}")
    raw = lzf_decompress(bytes(body[_SIZES.size:_SIZES.size + compressed_size]), raw_size)
    # binary_compressed stores each field as one column of all points (structure of arrays).

    def column(f: Field) -> NDArray[Any]:
        start = header.offset(f.name) * header.points
        return np.frombuffer(raw, dtype=f.numpy_type, count=header.points, offset=start)

    xyz = np.stack([column(_required(header, axis)) for axis in "xyz"], axis=1)
    colour = header.colour_field()
    if colour is None:
        return xyz, None
    bits = np.frombuffer(raw, dtype="<u4", count=header.points, offset=header.offset(colour.name) * header.points)
    return xyz, bits.astype(np.uint32)


def _required(header: Header, name: str) -> Field:
    f = header.field(name)
    assert f is not None  # checked by parse_header
    return f


def lzf_decompress(data: bytes, size: int) -> bytes:
    """Decode liblzf's format into exactly ``size`` bytes.

    Each control byte ``c`` starts either a literal run (``c < 32``: the next ``c + 1`` bytes) or a back reference
    (length ``(c >> 5) + 2``, extended by one more byte when ``c >> 5 == 7``; distance ``((c & 31) << 8) + next byte
    + 1`` back from the current output end). Back references may overlap their own output (a repeating pattern).
    The loop is per token, not per byte: literals and references are copied as slices. Its cost is linear in
    ``size`` (which the caller bounds): measured 37 ms for a 640x480 xyz cloud (3.7 MB) of noisy floats, 0.75 s for
    the same size made only of the shortest tokens (the worst case). Viam cameras send ``binary``, not this.

    Raises:
        PCDError: Truncated input, a reference before the start, or output that does not come out at ``size`` bytes.
    """
    out = bytearray(size)
    ip = op = 0
    end = len(data)
    while ip < end:
        ctrl = data[ip]
        ip += 1
        if ctrl < 32:
            run = ctrl + 1
            if ip + run > end or op + run > size:
                raise PCDError(f"LZF data corrupt: literal run of {run} bytes at input {ip - 1} overruns the data")
            out[op:op + run] = data[ip:ip + run]
            ip += run
            op += run
            continue
        length = ctrl >> 5
        if length == 7:
            if ip >= end:
                raise PCDError("LZF data corrupt: truncated back reference")
            length += data[ip]
            ip += 1
        if ip >= end:
            raise PCDError("LZF data corrupt: truncated back reference")
        ref = op - ((ctrl & 0x1F) << 8) - data[ip] - 1
        ip += 1
        length += 2
        if ref < 0 or op + length > size:
            raise PCDError(f"LZF data corrupt: back reference at input {ip} points before the start or past the end")
        distance = op - ref
        if distance >= length:
            out[op:op + length] = out[ref:ref + length]
        else:  # overlapping: the last `distance` bytes repeat
            pattern = bytes(out[ref:op])
            out[op:op + length] = (pattern * (length // distance + 1))[:length]
        op += length
    if op != size:
        raise PCDError(f"LZF data decompressed to {op:,} bytes; the header declares {size:,}")
    return bytes(out)


# --- writing -------------------------------------------------------------------------------------------------------


def write_pcd(xyz: NDArray[np.floating], rgb: NDArray[np.integer] | None = None) -> bytes:
    """A ``binary`` PCD file of the points (unorganised: WIDTH N, HEIGHT 1), coordinates as float32.

    The header lines come in the order PCL and rdk expect; a colour is written as ``rgb`` TYPE U (packed
    ``0x00RRGGBB``), which both read.
    """
    points = np.asarray(xyz, dtype="<f4").reshape(-1, 3)
    n = points.shape[0]
    names, sizes, types = ["x", "y", "z"], ["4", "4", "4"], ["F", "F", "F"]
    if rgb is not None:
        names.append("rgb")
        sizes.append("4")
        types.append("U")
    header = header_text(names, sizes, types, width=n, height=1, data="binary")
    if rgb is None:
        return header + points.tobytes()
    record = np.empty(n, dtype=[("xyz", "<f4", (3,)), ("rgb", "<u4")])
    record["xyz"] = points
    record["rgb"] = np.asarray(rgb).astype(np.uint32)
    return header + record.tobytes()


def header_text(names: Sequence[str], sizes: Sequence[str], types: Sequence[str], *, width: int, height: int,
                data: str, counts: Sequence[str] | None = None) -> bytes:
    """A PCD v0.7 header (also used by tests and the local runner to write other encodings)."""
    lines = ["# .PCD v0.7 - Point Cloud Data file format", "VERSION .7", "FIELDS " + " ".join(names),
             "SIZE " + " ".join(sizes), "TYPE " + " ".join(types), "COUNT " + " ".join(counts or ["1"] * len(names)),
             f"WIDTH {width}", f"HEIGHT {height}", "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {width * height}", f"DATA {data}"]
    return ("\n".join(lines) + "\n").encode("ascii")
