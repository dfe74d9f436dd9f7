"""The TFX Transform module file: encoded image bytes → fixed-size float pixels.

TFX builds every .py in this folder into a wheel and hashes them for caching, so this
module imports only the transform package, TensorFlow, TF Transform and the standard library.
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf

from transform.features import IMAGE_KEY, LABEL_KEY, TRANSFORMED_IMAGE_KEY


def _to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """Float [h, w, 1|2|3|4] → [h, w, channels]: alpha dropped, gray ↔ RGB converted."""
    # Decoders give 2 (gray + alpha) or 4 (RGBA) channels; the colour is in the first 1 or 3.
    colour = tf.where(tf.shape(image)[-1] >= 3, 3, 1)
    image = image[..., :colour]
    if channels == 3:
        # Gray repeated three times is RGB; RGB is tiled once, i.e. left alone.
        return tf.tile(image, [1, 1, 3 // colour])
    return tf.cond(colour == 3, lambda: tf.image.rgb_to_grayscale(image), lambda: image)


def _uint(data: tf.Tensor, offset: int, size: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer of `size` bytes at `offset` of a scalar string, as int64."""
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8),
                     tf.int64)
    powers = tf.range(size - 1, -1, -1, dtype=tf.int64) if big_endian else tf.range(
        size, dtype=tf.int64)
    return tf.reduce_sum(digits * tf.bitwise.left_shift(tf.constant(1, tf.int64), 8 * powers))


def _area(width: tf.Tensor, height: tf.Tensor) -> tf.Tensor:
    # Each side capped at 2^31 (no format allows more), so the product can't overflow int64.
    return tf.minimum(width, 2**31) * tf.minimum(height, 2**31)


def _bmp_pixels(data: tf.Tensor) -> tf.Tensor:
    # BITMAPCOREHEADER (12 bytes) has 16-bit sizes; the later headers 32-bit signed ones,
    # a negative height meaning top-down rows.
    def signed(value: tf.Tensor) -> tf.Tensor:
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    return tf.cond(_uint(data, 14, 4, big_endian=False) == 12,
                   lambda: _area(_uint(data, 18, 2, False), _uint(data, 20, 2, False)),
                   lambda: _area(signed(_uint(data, 18, 4, False)),
                                 signed(_uint(data, 22, 4, False))))


def header_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """Width x height as an encoded image's header states it, read without decoding (int64;
    0 for bytes of no known format, which the decoder then rejects)."""
    data = tf.strings.join([image_bytes, b"\0" * 26])  # every offset read below exists
    is_jpeg = tf.strings.substr(data, 0, 2) == b"\xff\xd8"

    def jpeg() -> tf.Tensor:
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0] * shape[1]

    return tf.case([
        (tf.strings.substr(data, 0, 4) == b"\x89PNG",
         lambda: _area(_uint(data, 16, 4, True), _uint(data, 20, 4, True))),
        (tf.strings.substr(data, 0, 4) == b"GIF8",
         lambda: _area(_uint(data, 6, 2, False), _uint(data, 8, 2, False))),
        (tf.strings.substr(data, 0, 2) == b"BM", lambda: _bmp_pixels(data)),
        (is_jpeg, jpeg)], default=lambda: tf.constant(0, tf.int64), exclusive=True)


def decode_and_resize(image_bytes: tf.Tensor, config: Mapping[str, Any]) -> tf.Tensor:
    """Decode one encoded image (scalar string) to float32 [height, width, channels].

    `config` is `ImageConfig(...).model_dump()`. PNG, JPEG, BMP and GIF are read (a GIF's
    first frame only). The image is resized to (height, width) with antialiased bilinear
    interpolation and no cropping or padding, so a source of another aspect ratio is
    stretched. Pixels are scaled to [0, 1] ('unit') or [-1, 1] ('symmetric').

    Raises tf.errors.InvalidArgumentError (when run) on bytes that do not decode, rather
    than yielding garbage, and on images over `max_pixels` before decoding them.
    """
    height, width, channels = config["height"], config["width"], config["channels"]
    within_limit = tf.debugging.assert_less_equal(
        header_pixels(image_bytes), tf.constant(config["max_pixels"], tf.int64),
        message=f"the image has more pixels than image.max_pixels={config['max_pixels']}")
    with tf.control_dependencies([within_limit]):
        image = tf.io.decode_image(image_bytes, channels=0, dtype=tf.float32,
                                   expand_animations=False)
    image = _to_channels(image, channels)
    image = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
    # Interpolation rounding can step just outside [0, 1]; the range is a promise.
    image = tf.clip_by_value(image, 0.0, 1.0)
    if config["scale"] == "symmetric":
        image = image * 2.0 - 1.0
    return tf.ensure_shape(image, [height, width, channels])


def preprocessing_fn(inputs: dict[str, tf.Tensor],
                     custom_config: dict[str, Any]) -> dict[str, tf.Tensor]:
    """TF Transform entry point; TFX passes the `ImageConfig` dump as `custom_config`.

    The image output depends on the image input only, so serving, where the label is
    missing, prunes the label passthrough and still gets pixels.
    """
    images = tf.squeeze(inputs[IMAGE_KEY], axis=1)
    spec = tf.TensorSpec([custom_config["height"], custom_config["width"],
                          custom_config["channels"]], tf.float32)
    pixels = tf.map_fn(lambda image: decode_and_resize(image, custom_config), images,
                       fn_output_signature=spec)
    return {TRANSFORMED_IMAGE_KEY: pixels, LABEL_KEY: tf.squeeze(inputs[LABEL_KEY], axis=1)}
