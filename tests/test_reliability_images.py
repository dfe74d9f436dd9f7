"""The decode path under garbage: `decode_and_resize`, as Transform and serving run it (in a
graph), either raises InvalidArgumentError or returns finite pixels of the configured shape
and range. Property-based: arbitrary bytes, bytes behind real image magic numbers, and real
PNG / JPEG / BMP / GIF images of random size and mode, whole or corrupted."""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from transform.options import ImageConfig
from transform.preprocessing import decode_and_resize

# Examples per property; docs/reliability.md reports the totals.
RANDOM_BYTES = 400
IMAGES = 500

CONFIGS = [ImageConfig(height=28, width=28, channels=1, scale="unit").model_dump(),
           ImageConfig(height=9, width=17, channels=3, scale="symmetric").model_dump()]
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"GIF87a", b"BM"]
# The modes each format can write.
MODES = {"PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"], "JPEG": ["L", "RGB", "CMYK"],
         "BMP": ["1", "L", "P", "RGB", "RGBA"], "GIF": ["L", "P", "RGB"]}


@functools.cache
def decoder(index: int) -> tf.types.experimental.ConcreteFunction:
    """decode_and_resize of CONFIGS[index], traced once, as tf.map_fn runs it in Transform."""
    config = CONFIGS[index]
    return tf.function(lambda image: decode_and_resize(image, config),
                       input_signature=[tf.TensorSpec([], tf.string)]).get_concrete_function()


def check_decodes_or_rejects(data: bytes) -> str:
    """Every config gives a well-formed image or InvalidArgumentError; which one, as an event."""
    outcomes = set()
    for index, config in enumerate(CONFIGS):
        try:
            pixels = decoder(index)(tf.constant(data)).numpy()
        except tf.errors.InvalidArgumentError:
            outcomes.add("rejected")
            continue
        assert pixels.shape == (config["height"], config["width"], config["channels"])
        assert pixels.dtype == np.float32 and np.isfinite(pixels).all()
        low = -1.0 if config["scale"] == "symmetric" else 0.0
        assert low <= pixels.min() and pixels.max() <= 1.0
        outcomes.add("decoded")
    assert len(outcomes) == 1, "configs disagree on whether the bytes are an image"
    event(outcomes.pop())
    return data


@st.composite
def real_image(draw: st.DrawFn) -> bytes:
    image_format = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[image_format]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    event(f"{image_format} {mode}")
    return buffer.getvalue()


@st.composite
def corrupted(draw: st.DrawFn, images: st.SearchStrategy[bytes]) -> bytes:
    """An image truncated, with bytes overwritten, inserted or deleted, or left whole."""
    data = bytearray(draw(images))
    damage = draw(st.sampled_from(["none", "truncate", "overwrite", "insert", "delete",
                                   "header"]))
    event(f"damage: {damage}")
    at = draw(st.integers(0, max(0, len(data) - 1)))
    if damage == "truncate":
        del data[at:]
    elif damage == "overwrite":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif damage == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    elif damage == "delete":
        del data[at:at + draw(st.integers(1, 16))]
    elif damage == "header":  # the dimensions and format fields live in the first bytes
        data[:32] = draw(st.binary(min_size=32, max_size=32))
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data behind it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@settings(max_examples=RANDOM_BYTES, deadline=None)
@given(st.builds(bytes.__add__, st.sampled_from(MAGIC), st.binary(max_size=300)))
def test_arbitrary_bytes_decode_or_are_rejected(data):
    check_decodes_or_rejects(data)


@settings(max_examples=IMAGES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted(real_image()))
def test_real_images_whole_or_corrupted_decode_or_are_rejected(data):
    check_decodes_or_rejects(data)


@settings(max_examples=50, deadline=None)
@given(st.integers(2**15, 2**31 - 1), st.integers(2**15, 2**31 - 1))
def test_headers_claiming_huge_images_are_rejected_without_decoding(width, height):
    """A few bytes claiming over 2^30 pixels: rejected by the pixel cap, before decoding."""
    data = png_claiming(width, height)
    for index in range(len(CONFIGS)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image.max_pixels"):
            decoder(index)(tf.constant(data))


def encoded(image_format: str, width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, image_format)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format, mode", [("PNG", "L"), ("JPEG", "RGB"), ("GIF", "P"),
                                                ("BMP", "RGB")])
def test_pixel_cap_reads_every_format_header(image_format, mode):
    config = ImageConfig(height=8, width=8, max_pixels=30 * 30).model_dump()
    decode = tf.function(lambda image: decode_and_resize(image, config),
                         input_signature=[tf.TensorSpec([], tf.string)])
    assert decode(tf.constant(encoded(image_format, 30, 30, mode))).shape == (8, 8, 1)
    assert decode(tf.constant(encoded(image_format, 45, 20, mode))).shape == (8, 8, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image.max_pixels=900\b"):
        decode(tf.constant(encoded(image_format, 30, 31, mode)))


def test_a_valid_decompression_bomb_is_refused_under_the_default_cap():
    """8000 x 8000 black pixels compress to 62 kB of PNG; decoding them would take GBs."""
    bomb = encoded("PNG", 8000, 8000)
    assert len(bomb) < 100_000 and ImageConfig(height=8, width=8).max_pixels < 8000 * 8000
    with pytest.raises(tf.errors.InvalidArgumentError, match="image.max_pixels"):
        decoder(0)(tf.constant(bomb))
