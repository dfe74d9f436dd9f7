"""The TFX Transform module file: encoded image bytes → fixed-size float pixels.

TFX builds every .py in this folder into a wheel and hashes them for caching, so this
module imports only the transform package, TensorFlow, TF Transform and the standard library.
"""

from __future__ import annotations

from typing import Any, Mapping

import tensorflow as tf

from transform.features import IMAGE_KEY, LABEL_KEY, TRANSFORMED_IMAGE_KEY
from transform.image_limits_graph import within_limits


def _to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """Float [h, w, 1|2|3|4] → [h, w, channels]: alpha dropped, gray ↔ RGB converted."""
    # Decoders give 2 (gray + alpha) or 4 (RGBA) channels; the colour is in the first 1 or 3.
    colour = tf.where(tf.shape(image)[-1] >= 3, 3, 1)
    image = image[..., :colour]
    if channels == 3:
        # Gray repeated three times is RGB; RGB is tiled once, i.e. left alone.
        return tf.tile(image, [1, 1, 3 // colour])
    return tf.cond(colour == 3, lambda: tf.image.rgb_to_grayscale(image), lambda: image)


def decode_and_resize(image_bytes: tf.Tensor, config: Mapping[str, Any]) -> tf.Tensor:
    """Decode one encoded image (scalar string) to float32 [height, width, channels].

    `config` is `ImageConfig(...).model_dump()`. PNG, JPEG, BMP and GIF are read (a GIF's
    first frame only). The image is resized to (height, width) with antialiased bilinear
    interpolation and no cropping or padding, so a source of another aspect ratio is
    stretched. Pixels are scaled to [0, 1] ('unit') or [-1, 1] ('symmetric').

    Raises tf.errors.InvalidArgumentError (when run) on bytes that do not decode, rather
    than yielding garbage, and, before decoding, on images over `max_bytes` or whose header
    states more than `max_pixels` to decode (transform/image_limits.py).
    """
    height, width, channels = config["height"], config["width"], config["channels"]
    with tf.control_dependencies([within_limits(image_bytes, config["max_pixels"],
                                                config["max_bytes"])]):
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
