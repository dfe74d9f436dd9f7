"""The image limits (transform/image_limits.py): header-only, GIF frames counted, a byte cap,
the same answer from the Python check (ingestion, predict) and the graph (Transform, serving)."""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.image_files import crafted_gif
from transform.image_limits import ImageLimits, decode_cost
from transform.image_limits_graph import decode_cost_tensor
from transform.options import ImageConfig
from transform.preprocessing import decode_and_resize

LIMIT = 10**12  # high enough that counting never stops early, so both forms give exact costs


@functools.cache
def graph_cost() -> tf.types.experimental.ConcreteFunction:
    return tf.function(lambda data: decode_cost_tensor(data, LIMIT),
                       input_signature=[tf.TensorSpec([], tf.string)]).get_concrete_function()


def both_costs(data: bytes) -> tuple[int, int]:
    return decode_cost(data, LIMIT), int(graph_cost()(tf.constant(data)))


def gif(frames: int, size: tuple[int, int] = (10, 10), seed: int = 0) -> bytes:
    """A real animated GIF whose frames all differ (Pillow would merge equal ones)."""
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (size[1], size[0]), np.uint8), "L")
              for _ in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], optimize=False,
                   disposal=1)
    return buffer.getvalue()


def encoded(image_format: str, size: tuple[int, int], **options) -> bytes:
    buffer = io.BytesIO()
    mode = "RGB" if image_format == "JPEG" else "L"
    Image.new(mode, size).save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("data, expected", [
    (encoded("PNG", (30, 20)), 600),
    (encoded("JPEG", (31, 7)), 217),
    (encoded("JPEG", (33, 9), progressive=True), 297),
    (encoded("BMP", (12, 5)), 60),
    (encoded("GIF", (15, 4)), 60),
    (gif(7, (10, 10)), 700),
    (crafted_gif((4, 4), [(100, 3), (2, 2)]), 304),
    (crafted_gif((50, 50), [(3, 3)] * 3, local_table=True), 2500),
    (b"GIF89a" + b"\x00" * 3, 0),
    (b"not an image", 0),
], ids=["png", "jpeg", "progressive jpeg", "bmp", "gif", "7 frames", "frames past the screen",
        "local tables", "truncated gif", "unknown"])
def test_python_and_graph_give_the_same_cost(data, expected):
    assert both_costs(data) == (expected, expected)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([b"GIF89a", b"GIF87a", b"\x89PNG", b"BM", b"\xff\xd8\xff"]),
       st.binary(max_size=200))
def test_python_and_graph_agree_on_arbitrary_headers(magic, rest):
    data = magic + rest
    if not magic.startswith(b"\xff\xd8"):
        assert decode_cost(data, LIMIT) == int(graph_cost()(tf.constant(data)))
        return
    # libjpeg refuses a damaged header outright (the image is refused then) and reads some
    # the marker walk gives up on (0: the decoder decides); where both read one, they agree.
    try:
        graph = int(graph_cost()(tf.constant(data)))
    except tf.errors.InvalidArgumentError:
        return
    assert decode_cost(data, LIMIT) in (0, graph)


def test_counting_stops_once_over_the_limit():
    data = crafted_gif((10, 10), [(10, 10)] * 1000)
    assert decode_cost(data, 250) > 250 and decode_cost(data, 250) < 1000 * 100


def run_decode(data: bytes, **limits) -> tf.Tensor:
    config = ImageConfig(height=8, width=8, **limits).model_dump()
    return decode_and_resize(tf.constant(data), config)


def test_frames_at_the_cap_decode_and_one_frame_more_is_refused_everywhere():
    at_cap, over = gif(5), gif(6)  # 10 x 10 frames: 500 and 600 pixels
    limits = ImageLimits(max_pixels=500)
    assert limits.problem(at_cap) is None
    assert "image.max_pixels=500" in limits.problem(over)
    assert run_decode(at_cap, max_pixels=500).shape == (8, 8, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image.max_pixels=500\b"):
        run_decode(over, max_pixels=500)


def test_bytes_at_the_cap_pass_and_one_byte_more_is_refused_everywhere():
    data = encoded("PNG", (9, 9))
    assert ImageLimits(max_bytes=len(data)).problem(data) is None
    assert f"image.max_bytes={len(data) - 1}" in ImageLimits(max_bytes=len(data) - 1).problem(
        data)
    assert run_decode(data, max_bytes=len(data)).shape == (8, 8, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"image.max_bytes={len(data) - 1}"):
        run_decode(data, max_bytes=len(data) - 1)


def test_a_many_frame_gif_is_refused_under_the_default_cap():
    """400 frames of 1000 x 1000: a 1 MB file that costs a GB to decode in full."""
    frames = crafted_gif((1000, 1000), [(1000, 1000)] * 400)
    assert len(frames) < 10_000
    assert "image.max_pixels=50000000" in ImageLimits().problem(frames)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image.max_pixels=50000000"):
        run_decode(frames)
