"""PCD reading (ascii, binary, binary_compressed), writing (binary), LZF decoding, and the bounds on hostile headers."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from module.errors import InvalidInputError, ResourceExhaustedError
from module.vision.pcd import PCDError, header_text, lzf_decompress, parse_header, read_pcd, write_pcd

XYZ = np.array([[0.1, -0.2, 1.5], [1.0, 2.0, 3.0], [-0.5, 0.25, 0.75]], dtype=np.float32)
RGB = np.array([0xFF0000, 0x00FF00, 0x123456], dtype=np.uint32)


def lzf_literals(raw: bytes) -> bytes:
    """A valid LZF stream that stores ``raw`` as literal runs only (an independent, trivially correct encoder)."""
    out = bytearray()
    for start in range(0, len(raw), 32):
        chunk = raw[start:start + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def compressed_pcd(columns: list[np.ndarray], names: list[str], types: list[str], *, width: int, height: int = 1) -> bytes:
    raw = b"".join(np.ascontiguousarray(c).tobytes() for c in columns)  # structure of arrays, field by field
    packed = lzf_literals(raw)
    header = header_text(names, [str(c.dtype.itemsize) for c in columns], types, width=width, height=height,
                         data="binary_compressed")
    return header + struct.pack("<II", len(packed), len(raw)) + packed


# --- LZF ------------------------------------------------------------------------------------------------------------


def test_lzf_literal_run_and_overlapping_back_reference() -> None:
    # "abc" as a literal run, then a 9-byte reference 3 back (ctrl 0xE0: length field 7 + extension byte 0 -> 9,
    # offset high bits 0, offset low byte 2 -> distance 3): liblzf's encoding of "abcabcabcabc".
    assert lzf_decompress(b"\x02abc\xe0\x00\x02", 12) == b"abcabcabcabc"


def test_lzf_short_back_reference_and_run_of_one_byte() -> None:
    # "x" literal, then ctrl 0x20 = length 1+2 = 3 at distance 0+0+1 = 1: "xxxx"; then literal "yz".
    assert lzf_decompress(b"\x00x\x20\x00\x01yz", 6) == b"xxxxyz"


def test_lzf_long_distance_reference() -> None:
    head = bytes(range(256)) + bytes(range(44))  # 300 distinct-ish bytes
    stream = lzf_literals(head)
    # copy 5 bytes from 300 back: distance-1 = 299 = 0x12B -> ctrl = (3 << 5) | 0x01, low byte 0x2B
    stream += bytes([(3 << 5) | 0x01, 0x2B])
    assert lzf_decompress(stream, 305) == head + head[:5]


@pytest.mark.parametrize("stream, size, problem", [
    (b"\x05ab", 6, "overruns"),                # literal run longer than the input
    (b"\x00a\x20\x05", 4, "before the start"),   # reference 6 back with 1 byte of output
    (b"\x00a\xe0", 10, "truncated"),           # reference missing its bytes
    (b"\x00a", 5, "decompressed to 1"),        # too short an output
    (b"\x01ab", 1, "overruns"),                # more output than declared
])
def test_lzf_corrupt_streams_are_refused(stream: bytes, size: int, problem: str) -> None:
    with pytest.raises(PCDError, match=problem):
        lzf_decompress(stream, size)


# --- round trips and hand-made files ------------------------------------------------------------------------------


def test_binary_round_trip_without_colour() -> None:
    cloud = read_pcd(write_pcd(XYZ))
    np.testing.assert_array_equal(cloud.xyz, XYZ)
    assert cloud.rgb is None


def test_binary_round_trip_with_colour() -> None:
    cloud = read_pcd(write_pcd(XYZ, RGB))
    np.testing.assert_array_equal(cloud.xyz, XYZ)
    np.testing.assert_array_equal(cloud.rgb, RGB)


def test_written_header_is_the_order_rdk_and_pcl_expect() -> None:
    lines = [line.split()[0] for line in write_pcd(XYZ, RGB).split(b"DATA binary\n")[0].decode().splitlines()
             if not line.startswith("#")]
    assert lines == ["VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS"]
    header = parse_header(write_pcd(XYZ, RGB))
    assert (header.width, header.height, header.points, header.data) == (3, 1, 3, "binary")


def test_ascii_hand_made_with_integer_rgb_as_rdk_writes() -> None:
    text = (b"VERSION .7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F I\nCOUNT 1 1 1 1\nWIDTH 2\nHEIGHT 1\n"
            b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA ascii\n0.5 -0.25 1.0 16711680\n1 2 3 255\n")
    cloud = read_pcd(text)
    np.testing.assert_allclose(cloud.xyz, [[0.5, -0.25, 1.0], [1, 2, 3]])
    np.testing.assert_array_equal(cloud.rgb, [0xFF0000, 0x0000FF])


def test_ascii_rgb_float_written_either_way() -> None:
    # PCL prints a TYPE F rgb as the packed integer; other writers print the float whose bits are the colour.
    as_float = np.array([0x00FF00], dtype=np.uint32).view(np.float32)[0]
    text = (b"FIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\nWIDTH 2\nHEIGHT 1\nDATA ascii\n"
            + f"0 0 1 {float(as_float)!r}\n0 0 2 65280\n".encode())
    np.testing.assert_array_equal(read_pcd(text).rgb, [0x00FF00, 0x00FF00])


def test_binary_hand_made_with_extra_fields_float64_and_float_rgb() -> None:
    # PCL-style: x y z (float64), an ignored normal with COUNT 3, rgb as TYPE F, intensity as uint16.
    n = 2
    dtype = np.dtype([("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("normal", "<f4", (3,)), ("rgb", "<u4"), ("i", "<u2")])
    records = np.zeros(n, dtype=dtype)
    records["x"], records["y"], records["z"] = [1.5, -2.0], [0.5, 0.25], [3.0, 4.0]
    records["normal"] = 7.0
    records["rgb"] = [0x010203, 0xA0B0C0]
    records["i"] = 9
    header = header_text(["x", "y", "z", "normal", "rgb", "intensity"], ["8", "8", "8", "4", "4", "2"],
                         ["F", "F", "F", "F", "F", "U"], counts=["1", "1", "1", "3", "1", "1"], width=n, height=1,
                         data="binary")
    cloud = read_pcd(header + records.tobytes())
    np.testing.assert_allclose(cloud.xyz, [[1.5, 0.5, 3.0], [-2.0, 0.25, 4.0]])
    np.testing.assert_array_equal(cloud.rgb, [0x010203, 0xA0B0C0])
    assert cloud.xyz.dtype == np.float32


def test_binary_compressed_hand_made_with_rgba() -> None:
    x, y, z = (XYZ[:, i].copy() for i in range(3))
    data = compressed_pcd([x, y, z, RGB], ["x", "y", "z", "rgba"], ["F", "F", "F", "U"], width=3)
    cloud = read_pcd(data)
    np.testing.assert_array_equal(cloud.xyz, XYZ)
    np.testing.assert_array_equal(cloud.rgb, RGB)


def test_binary_compressed_with_back_references_decodes_columns() -> None:
    # Four points at (0, 0, 1): the x and y columns are 32 zero bytes, the z column 4 copies of 1.0f.
    one = np.ones(1, dtype="<f4").tobytes()
    raw = bytes(32) + one * 4
    stream = (b"\x03" + bytes(4)                # 4 literal zero bytes
              + bytes([0xE0, 19, 3])             # 28 bytes (7 + 19 + 2) from 4 back: the rest of x and y
              + b"\x03" + one                   # the first 1.0f
              + bytes([0xE0, 3, 3]))             # 12 bytes (7 + 3 + 2) from 4 back: three more 1.0f
    assert lzf_decompress(stream, len(raw)) == raw
    header = header_text(["x", "y", "z"], ["4", "4", "4"], ["F", "F", "F"], width=4, height=1, data="binary_compressed")
    cloud = read_pcd(header + struct.pack("<II", len(stream), len(raw)) + stream)
    np.testing.assert_array_equal(cloud.xyz, [[0, 0, 1]] * 4)


def test_organised_cloud_drops_nan_holes() -> None:
    grid = np.array([[0, 0, 1], [np.nan, np.nan, np.nan], [1, 1, 2], [0, np.inf, 1]], dtype=np.float32)
    header = header_text(["x", "y", "z"], ["4", "4", "4"], ["F", "F", "F"], width=2, height=2, data="binary")
    cloud = read_pcd(header + grid.tobytes())
    np.testing.assert_array_equal(cloud.xyz, [[0, 0, 1], [1, 1, 2]])
    ascii_cloud = read_pcd(header_text(["x", "y", "z"], ["4", "4", "4"], ["F", "F", "F"], width=2, height=2,
                                       data="ascii") + b"0 0 1\nnan nan nan\n1 1 2\n0 inf 1\n")
    np.testing.assert_array_equal(ascii_cloud.xyz, cloud.xyz)


def test_each_encoding_gives_the_same_points() -> None:
    rng = np.random.default_rng(3)
    xyz = rng.normal(size=(500, 3)).astype(np.float32)
    rgb = rng.integers(0, 1 << 24, 500).astype(np.uint32)
    ascii_body = "".join(f"{a!r} {b!r} {c!r} {int(d)}\n" for (a, b, c), d in zip(xyz.tolist(), rgb)).encode()
    encodings = {
        "binary": write_pcd(xyz, rgb),
        "ascii": header_text(["x", "y", "z", "rgb"], ["4"] * 4, ["F", "F", "F", "U"], width=500, height=1,
                             data="ascii") + ascii_body,
        "binary_compressed": compressed_pcd([xyz[:, 0].copy(), xyz[:, 1].copy(), xyz[:, 2].copy(), rgb],
                                            ["x", "y", "z", "rgb"], ["F", "F", "F", "U"], width=500),
    }
    for name, data in encodings.items():
        cloud = read_pcd(data)
        np.testing.assert_array_equal(cloud.xyz, xyz, err_msg=name)
        np.testing.assert_array_equal(cloud.rgb, rgb, err_msg=name)


def test_empty_cloud() -> None:
    cloud = read_pcd(write_pcd(np.zeros((0, 3), dtype=np.float32)))
    assert len(cloud) == 0 and cloud.xyz.shape == (0, 3)


# --- refusals -------------------------------------------------------------------------------------------------------


def _binary_header(points: int, width: int | None = None, height: int = 1) -> bytes:
    return header_text(["x", "y", "z"], ["4", "4", "4"], ["F", "F", "F"], width=width if width is not None else points,
                       height=height, data="binary")


def test_header_promising_more_points_than_the_data_holds_is_refused() -> None:
    with pytest.raises(PCDError, match="too short.*1,000,000 points"):
        read_pcd(_binary_header(1_000_000) + bytes(120))


def test_points_must_equal_width_times_height() -> None:
    data = _binary_header(4, width=2, height=2).replace(b"POINTS 4", b"POINTS 5")
    with pytest.raises(PCDError, match="POINTS 5 does not equal WIDTH \\* HEIGHT"):
        read_pcd(data + bytes(60))


def test_absurd_point_count_is_refused_before_allocating() -> None:
    with pytest.raises(ResourceExhaustedError, match="at most"):
        read_pcd(_binary_header(4_000_000_000, width=4_000_000_000) + bytes(12), max_points=10_000_000)


def test_compressed_size_claims_are_checked() -> None:
    header = header_text(["x", "y", "z"], ["4", "4", "4"], ["F", "F", "F"], width=1_000_000, height=1,
                         data="binary_compressed")
    with pytest.raises(PCDError, match="cannot expand"):
        read_pcd(header + struct.pack("<II", 10, 12_000_000) + bytes(10))
    with pytest.raises(PCDError, match="only 10 follow"):
        read_pcd(header + struct.pack("<II", 5000, 12_000_000) + bytes(10))
    with pytest.raises(PCDError, match="does not match"):
        read_pcd(header + struct.pack("<II", 10, 12) + bytes(10))


@pytest.mark.parametrize("data, problem", [
    (b"hello world", "no DATA line"),
    (b"FIELDS x y\nSIZE 4 4\nTYPE F F\nWIDTH 1\nDATA binary\n" + bytes(8), "no 'z' field"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F I\nWIDTH 1\nDATA binary\n" + bytes(12), "field 'z' must be a float"),
    (b"FIELDS x y z\nSIZE 4 4\nTYPE F F F\nWIDTH 1\nDATA binary\n" + bytes(12), "SIZE must have 3 entries"),
    (b"FIELDS x y z\nSIZE 4 4 3\nTYPE F F F\nWIDTH 1\nDATA binary\n" + bytes(12), "TYPE F SIZE 3"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH -1\nDATA binary\n", "WIDTH must be one integer"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1\nDATA zip\n", "DATA must be one of"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1\nCOLOR red\nDATA ascii\n1 2 3\n", "unknown line"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 2\nDATA ascii\n1.0 2.0 3.0\n4.0 5.0\n", "5 values"),
    (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1\nDATA ascii\n1 2 x\n", "not a number"),
    (b"FIELDS x y z rgb\nSIZE 4 4 4 2\nTYPE F F F U\nWIDTH 1\nDATA ascii\n1 2 3 4\n", "4 bytes with COUNT 1"),
])
def test_malformed_files_get_a_clear_invalid_input_error(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        read_pcd(data)
