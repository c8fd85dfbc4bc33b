"""No message a user reads carries a Python object repr ("<_io.BytesIO object at 0x7f...>"): the image decoder's
errors over many kinds of bad bytes, and the helpers every message goes through."""

from __future__ import annotations

import io
import re

import numpy as np
import PIL.Image
import pytest

from module.errors import ModuleError, describe_exception, plain_text
from module.vision.imaging import open_image, to_model_input

REPR = re.compile(r"object at 0x|<[\w.]+ object|at 0x[0-9a-f]{6,}")


def _jpeg() -> bytes:
    out = io.BytesIO()
    PIL.Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), np.uint8)).save(out, "JPEG")
    return out.getvalue()


def _bad_images() -> list[tuple[bytes, str]]:
    jpeg = _jpeg()
    rng = np.random.default_rng(3)
    cases = [(b"\xff\xd8\xff\xe0 not really a jpeg" * 4, "image/jpeg"), (bytes(4096), "image/jpeg"),
             (b"GIF89a" + bytes(100), "image/png"), (jpeg[: len(jpeg) // 3], "image/jpeg"), (b"BM" + bytes(60), "")]
    cases += [(rng.integers(0, 256, int(n), np.uint8).tobytes(), mime)
              for n, mime in zip(rng.integers(1, 3000, 40), ["image/jpeg", "image/png", "image/bmp", ""] * 10)]
    return cases


def test_decoder_errors_carry_no_object_repr() -> None:
    messages = []
    for data, mime in _bad_images():
        try:
            to_model_input(open_image(data, mime), (8, 8))
        except ModuleError as exc:
            messages.append(str(exc))
    assert len(messages) == len(_bad_images())
    assert [m for m in messages if REPR.search(m)] == []
    assert "cannot decode 4096 bytes as image/jpeg (or JPEG, PNG, BMP): no known image header" in messages


@pytest.mark.parametrize(("text", "plain"), [
    ("cannot identify image file <_io.BytesIO object at 0x7f3a2b1c0d90>", "cannot identify image file"),
    ("<function f at 0xdeadbeef> failed", "failed"),
    ("nothing to remove: a < b > c", "nothing to remove: a < b > c"),
])
def test_plain_text(text: str, plain: str) -> None:
    assert plain_text(text) == plain


def test_describe_exception() -> None:
    assert describe_exception(OSError("image file is truncated")) == "OSError: image file is truncated"
    assert describe_exception(ValueError("<object object at 0x7f00aa>")) == "ValueError"
