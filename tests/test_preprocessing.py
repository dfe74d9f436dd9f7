"""The Transform module on real TF Transform and Beam, fed real encoded images."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from PIL import Image

from transform.features import IMAGE_KEY, LABEL_KEY, TRANSFORMED_IMAGE_KEY
from transform.options import ImageConfig
from transform.preprocessing import decode_and_resize, preprocessing_fn

RAW_METADATA = tft.DatasetMetadata.from_feature_spec({
    IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64)})

# Non-square targets of both orientations, so swapping height and width shows.
GRAY_UNIT = ImageConfig(height=12, width=10, channels=1, scale="unit").model_dump()
RGB_SYMMETRIC = ImageConfig(height=10, width=14, channels=3, scale="symmetric").model_dump()


@dataclass(frozen=True)
class Sample:
    """One encoded image and the [0, 1] pixel every output pixel should have."""

    label: int
    encoded: bytes
    grey: float
    rgb: tuple[float, float, float]
    tolerance: float = 1e-5


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def _uniform(label: int, mode: str, size: tuple[int, int], colour: Any, image_format: str,
             grey: float, rgb: tuple[float, float, float], tolerance: float = 1e-5) -> Sample:
    encoded = _encode(Image.new(mode, size, colour), image_format)
    return Sample(label, encoded, grey, rgb, tolerance)


def _palette_gif() -> bytes:
    return _encode(Image.new("RGB", (16, 24), (0, 0, 255)).convert("P"), "GIF")


# Grey values follow tf.image.rgb_to_grayscale: 0.2989 R + 0.5870 G + 0.1140 B.
SAMPLES = [
    _uniform(0, "RGB", (9, 7), (255, 0, 0), "PNG", 0.2989, (1, 0, 0)),
    _uniform(1, "L", (8, 8), 200, "PNG", 200 / 255, (200 / 255,) * 3),
    # Half-transparent green: alpha is dropped, not blended.
    _uniform(2, "RGBA", (30, 20), (0, 255, 0, 128), "PNG", 0.5870, (0, 1, 0)),
    _uniform(3, "LA", (11, 5), (100, 7), "PNG", 100 / 255, (100 / 255,) * 3),
    Sample(4, _palette_gif(), 0.1140, (0, 0, 1)),
    _uniform(5, "RGB", (13, 17), (255, 255, 0), "BMP", 0.2989 + 0.5870, (1, 1, 0)),
    # JPEG is lossy: a flat colour comes back within a couple of levels.
    _uniform(6, "RGB", (40, 32), (255, 0, 0), "JPEG", 0.2989, (1, 0, 0), tolerance=0.02),
    _uniform(7, "L", (25, 50), 50, "JPEG", 50 / 255, (50 / 255,) * 3, tolerance=0.02),
]
SAMPLE_BY_LABEL = {sample.label: sample for sample in SAMPLES}

GRADIENT_LABEL = 8
"""A black top half over a white bottom half: shows rows stay rows after resizing."""


def _gradient_png() -> bytes:
    pixels = np.zeros((30, 20), np.uint8)
    pixels[15:] = 255
    return _encode(Image.fromarray(pixels, "L"), "PNG")


RAW_ROWS = [{IMAGE_KEY: [sample.encoded], LABEL_KEY: [sample.label]} for sample in SAMPLES]
RAW_ROWS.append({IMAGE_KEY: [_gradient_png()], LABEL_KEY: [GRADIENT_LABEL]})


@dataclass(frozen=True)
class Transformed:
    """One Beam run: its config, its outputs by label and its written transform graph."""

    config: dict[str, Any]
    by_label: dict[int, np.ndarray]
    transform_output_dir: str


def _analyze_and_transform(rows: list[dict], config: dict[str, Any], temp_dir: str,
                           output_dir: str | None = None) -> list[dict]:
    """Run preprocessing_fn as TFX does, in memory on the DirectRunner."""
    fn = functools.partial(preprocessing_fn, custom_config=config)
    with tft_beam.Context(temp_dir=temp_dir):
        (data, _), transform_fn = (rows, RAW_METADATA) | tft_beam.AnalyzeAndTransformDataset(fn)
        if output_dir:
            _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return data


@pytest.fixture(scope="module", params=[GRAY_UNIT, RGB_SYMMETRIC], ids=["gray-unit", "rgb-sym"])
def transformed(request, tmp_path_factory) -> Transformed:
    tmp = tmp_path_factory.mktemp("tft")
    data = _analyze_and_transform(RAW_ROWS, request.param, str(tmp / "temp"), str(tmp / "out"))
    by_label = {row[LABEL_KEY]: row[TRANSFORMED_IMAGE_KEY] for row in data}
    return Transformed(request.param, by_label, str(tmp / "out"))


def _to_unit(pixels: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    return (pixels + 1) / 2 if config["scale"] == "symmetric" else pixels


def test_outputs_have_static_shapes_and_the_label_passes_through(transformed: Transformed):
    config = transformed.config
    shape = [config["height"], config["width"], config["channels"]]
    spec = tft.TFTransformOutput(transformed.transform_output_dir).transformed_feature_spec()
    assert spec == {TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature(shape, tf.float32),
                    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    assert sorted(transformed.by_label) == [row[LABEL_KEY][0] for row in RAW_ROWS]
    for pixels in transformed.by_label.values():
        assert pixels.shape == tuple(shape) and pixels.dtype == np.float32


def test_pixels_span_the_configured_range(transformed: Transformed):
    low = -1.0 if transformed.config["scale"] == "symmetric" else 0.0
    everything = np.stack(list(transformed.by_label.values()))
    assert everything.min() >= low and everything.max() <= 1.0
    # The black-and-white image reaches both ends, so the scale is not squeezed.
    gradient = transformed.by_label[GRADIENT_LABEL]
    np.testing.assert_allclose([gradient.min(), gradient.max()], [low, 1.0], atol=1e-6)


def test_channels_are_converted(transformed: Transformed):
    config = transformed.config
    for label, sample in SAMPLE_BY_LABEL.items():
        pixels = _to_unit(transformed.by_label[label], config)
        expected = [sample.grey] if config["channels"] == 1 else sample.rgb
        np.testing.assert_allclose(pixels, np.broadcast_to(expected, pixels.shape),
                                   atol=sample.tolerance, err_msg=f"label {label}")


def test_resize_keeps_rows_as_rows(transformed: Transformed):
    pixels = _to_unit(transformed.by_label[GRADIENT_LABEL], transformed.config)
    np.testing.assert_allclose(pixels[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(pixels[-1], 1.0, atol=1e-6)


def test_serving_layer_without_label_matches_beam(transformed: Transformed):
    layer = tft.TFTransformOutput(transformed.transform_output_dir).transform_features_layer()
    images = tf.constant([row[IMAGE_KEY] for row in RAW_ROWS])
    outputs = layer({IMAGE_KEY: images})
    assert LABEL_KEY not in outputs
    expected = np.stack([transformed.by_label[row[LABEL_KEY][0]] for row in RAW_ROWS])
    np.testing.assert_allclose(outputs[TRANSFORMED_IMAGE_KEY].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("encoded", [
    b"not an image",
    _encode(Image.new("RGB", (9, 7)), "PNG")[:40],
    _encode(Image.new("RGB", (90, 70)), "JPEG")[:200],
], ids=["garbage", "truncated-png", "truncated-jpeg"])
def test_decode_and_resize_rejects_corrupt_bytes(encoded: bytes):
    with pytest.raises(tf.errors.InvalidArgumentError):
        decode_and_resize(tf.constant(encoded), GRAY_UNIT)


def test_transform_fails_on_a_corrupt_image(tmp_path):
    rows = [RAW_ROWS[0], {IMAGE_KEY: [b"not an image"], LABEL_KEY: [9]}]
    # TF Transform wraps the decoder's InvalidArgumentError in a ValueError.
    with pytest.raises(ValueError, match="Unknown image file format"):
        _analyze_and_transform(rows, GRAY_UNIT, str(tmp_path))
