"""What an encoded image may cost to decode, read from its header before anything decodes it.

One rule, in two forms that give the same answer: `decode_cost` here (Python: ingestion and
`predict`, before Pillow or TensorFlow sees the bytes) and `decode_cost_tensor` in
`image_limits_graph.py` (TensorFlow: inside the Transform graph, and so inside every exported
model's `serving_raw`). This module doesn't import TensorFlow: the CLI reads it.

The cost is the pixels the decoders allocate, as the header states them: width x height for
PNG, JPEG and BMP; for a GIF the larger of its logical screen and the sum of its frames'
rectangles, because giflib reads every frame before TensorFlow keeps the first. A byte cap
comes first, so that the header walk (a GIF's blocks) is bounded too. Bytes of no known
format cost 0; the decoder rejects them.
"""

from __future__ import annotations

import dataclasses

PNG, GIF, BMP, JPEG = b"\x89PNG", b"GIF8", b"BM", b"\xff\xd8"
PAD = 26  # every fixed offset read below exists in the padded data
SIDE = 2**31  # no format has larger sides; capping each keeps the product in int64


def _area(width: int, height: int) -> int:
    return min(width, SIDE) * min(height, SIDE)


def _uint(data: bytes, offset: int, size: int, big_endian: bool) -> int:
    return int.from_bytes(data[offset:offset + size], "big" if big_endian else "little")


def _colour_table(flags: int) -> int:
    """Bytes of a GIF colour table whose packed flags byte is `flags`."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_cost(data: bytes, limit: int) -> int:
    """max(screen, sum of frame rectangles), walking the blocks; stops once over `limit`."""
    screen = _area(_uint(data, 6, 2, False), _uint(data, 8, 2, False))
    end, frames = len(data) - PAD, 0
    position = 13 + _colour_table(data[10])
    while position < end and frames <= limit:
        introducer = data[position]
        if introducer == 0x2C:  # image descriptor: a frame
            frames += _area(_uint(data, position + 5, 2, False),
                            _uint(data, position + 7, 2, False))
            position += 10 + _colour_table(data[position + 9]) + 1  # + LZW code size
        elif introducer == 0x21:  # extension: introducer, label
            position += 2
        else:  # trailer, or not a block: the decoder sees the rest
            break
        while position < end and data[position]:  # data sub-blocks up to an empty one
            position += data[position] + 1
        position += 1
    return max(screen, frames)


def _bmp_cost(data: bytes) -> int:
    # BITMAPCOREHEADER (12 bytes) has 16-bit sizes; the later ones 32-bit signed, a negative
    # height meaning top-down rows.
    if _uint(data, 14, 4, False) == 12:
        return _area(_uint(data, 18, 2, False), _uint(data, 20, 2, False))
    def signed(value: int) -> int:
        return abs(value - 2**32 if value >= 2**31 else value)
    return _area(signed(_uint(data, 18, 4, False)), signed(_uint(data, 22, 4, False)))


# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_BARE = frozenset([0x01, *range(0xD0, 0xD9)])  # markers without a length


def _jpeg_cost(data: bytes) -> int:
    """The frame header's width x height, walking the markers before it."""
    position = 2
    while position + 9 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in _JPEG_FRAMES:
            return _area(_uint(data, position + 7, 2, True), _uint(data, position + 5, 2, True))
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker in _JPEG_BARE:
            position += 2
        elif marker in (0xD9, 0xDA):  # the image ends or its data starts: no frame header
            return 0
        else:
            position += 2 + _uint(data, position + 2, 2, True)
    return 0


def decode_cost(data: bytes, limit: int) -> int:
    """Pixels decoding `data` allocates, from its header; counting may stop once over `limit`."""
    # PNG and BMP sizes sit in the first PAD bytes: only a GIF's walk copies the whole image.
    header = data[:PAD] + b"\0" * PAD
    if header.startswith(PNG):
        return _area(_uint(header, 16, 4, True), _uint(header, 20, 4, True))
    if header.startswith(GIF):
        return _gif_cost(data + b"\0" * PAD, limit)
    if header.startswith(BMP):
        return _bmp_cost(header)
    if header.startswith(JPEG):
        return _jpeg_cost(data)
    return 0


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """The `image:` keys of the same names; their defaults are these."""

    max_pixels: int = 50_000_000
    max_bytes: int = 64 * 2**20

    def size_problem(self, size: int) -> str | None:
        """Why an encoded image of `size` bytes is refused before it is read, or None."""
        if size > self.max_bytes:
            return f"the image is {size:,} bytes, more than image.max_bytes={self.max_bytes}"
        return None

    def problem(self, data: bytes) -> str | None:
        """Why `data` is refused before decoding, naming the key; None when it is not."""
        problem = self.size_problem(len(data))
        if problem:
            return problem
        if decode_cost(data, self.max_pixels) > self.max_pixels:
            return (f"the image has more pixels to decode (GIF frames counted) than "
                    f"image.max_pixels={self.max_pixels}, as its header states")
        return None
