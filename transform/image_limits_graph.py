"""The image limits of image_limits.py as TensorFlow ops: the same walk, the same offsets, for
the Transform graph and every exported model's `serving_raw`."""

from __future__ import annotations

import tensorflow as tf

from transform.image_limits import BMP, GIF, JPEG, PAD, PNG, SIDE


def _uint(data: tf.Tensor, offset: tf.Tensor | int, size: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer of `size` bytes at `offset` of a 1-D uint8 tensor, as int64."""
    digits = tf.cast(data[offset:offset + size], tf.int64)
    powers = tf.range(size - 1, -1, -1, dtype=tf.int64) if big_endian else tf.range(
        size, dtype=tf.int64)
    return tf.reduce_sum(digits * tf.bitwise.left_shift(tf.constant(1, tf.int64), 8 * powers))


def _byte(data: tf.Tensor, index: tf.Tensor | int) -> tf.Tensor:
    return tf.cast(data[index], tf.int64)


def _area(width: tf.Tensor, height: tf.Tensor) -> tf.Tensor:
    return tf.minimum(width, SIDE) * tf.minimum(height, SIDE)


def _colour_table(flags: tf.Tensor) -> tf.Tensor:
    return tf.where(flags >= 0x80, tf.bitwise.left_shift(tf.constant(3, tf.int64),
                                                         flags % 8 + 1), 0)


def _gif_cost(data: tf.Tensor, limit: int) -> tf.Tensor:
    """_gif_cost as a graph: one loop step per block or data sub-block."""
    screen = _area(_uint(data, 6, 2, False), _uint(data, 8, 2, False))
    end = tf.size(data, out_type=tf.int64) - PAD

    def more(position, frames, in_blocks):
        del in_blocks
        return tf.logical_and(position < end, frames <= limit)

    def step(position, frames, in_blocks):
        byte = _byte(data, position)
        introducer_frame = tf.logical_and(tf.logical_not(in_blocks), tf.equal(byte, 0x2C))
        introducer_extension = tf.logical_and(tf.logical_not(in_blocks), tf.equal(byte, 0x21))
        frame = _area(_uint(data, position + 5, 2, False), _uint(data, position + 7, 2, False))
        frame_header = 10 + _colour_table(_byte(data, position + 9)) + 1
        next_position = tf.case([
            (in_blocks, lambda: position + byte + 1),
            (introducer_frame, lambda: position + frame_header),
            (introducer_extension, lambda: position + 2)], default=lambda: end)
        frames = frames + tf.where(introducer_frame, frame, 0)
        # After a block's header come its sub-blocks; an empty sub-block ends them.
        in_blocks = tf.logical_or(introducer_frame, introducer_extension) | tf.logical_and(
            in_blocks, byte > 0)
        return next_position, frames, in_blocks

    start = 13 + _colour_table(_byte(data, 10))
    _, frames, _ = tf.while_loop(more, step, (start, tf.constant(0, tf.int64),
                                              tf.constant(False)))
    return tf.maximum(screen, frames)


def _padded(image_bytes: tf.Tensor) -> tf.Tensor:
    """The bytes as uint8 (int64 would take 8 bytes a byte), PAD zero bytes after them."""
    return tf.io.decode_raw(tf.strings.join([image_bytes, b"\0" * PAD]), tf.uint8)


def decode_cost_tensor(image_bytes: tf.Tensor, limit: int) -> tf.Tensor:
    """decode_cost of a scalar string tensor, as int64."""
    head = tf.strings.substr(image_bytes, 0, 4)
    # PNG and BMP sizes sit in the first PAD bytes: only a GIF's walk copies the whole image.
    header = _padded(tf.strings.substr(image_bytes, 0, PAD))

    def jpeg() -> tf.Tensor:
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0] * shape[1]

    def bmp() -> tf.Tensor:
        def signed(value: tf.Tensor) -> tf.Tensor:
            return tf.abs(tf.where(value >= 2**31, value - 2**32, value))
        return tf.cond(_uint(header, 14, 4, False) == 12,
                       lambda: _area(_uint(header, 18, 2, False), _uint(header, 20, 2, False)),
                       lambda: _area(signed(_uint(header, 18, 4, False)),
                                     signed(_uint(header, 22, 4, False))))

    return tf.case([
        (tf.equal(head, PNG), lambda: _area(_uint(header, 16, 4, True),
                                            _uint(header, 20, 4, True))),
        (tf.equal(head, GIF), lambda: _gif_cost(_padded(image_bytes), limit)),
        (tf.equal(tf.strings.substr(head, 0, 2), BMP), bmp),
        (tf.equal(tf.strings.substr(head, 0, 2), JPEG), jpeg)],
        default=lambda: tf.constant(0, tf.int64), exclusive=True)


def within_limits(image_bytes: tf.Tensor, max_pixels: int, max_bytes: int) -> tf.Operation:
    """An op that fails with InvalidArgumentError, naming the key, when ImageLimits.problem
    would refuse the image; run it before decoding."""
    size = tf.cast(tf.strings.length(image_bytes), tf.int64)
    small_enough = tf.debugging.assert_less_equal(
        size, tf.constant(max_bytes, tf.int64),
        message=f"the image has more bytes than image.max_bytes={max_bytes}")
    with tf.control_dependencies([small_enough]):
        pixels = decode_cost_tensor(image_bytes, max_pixels)
    return tf.debugging.assert_less_equal(
        pixels, tf.constant(max_pixels, tf.int64),
        message=f"the image has more pixels to decode (frames counted) than "
                f"image.max_pixels={max_pixels}")
