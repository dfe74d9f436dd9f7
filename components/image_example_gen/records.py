"""What every source yields, and the stable hashes that split and sample it."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import tensorflow as tf
from PIL import Image

from transform.features import IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# What tf.io.decode_image, used downstream, can decode.
DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}


@dataclasses.dataclass(frozen=True)
class Item:
    """One input example before validation."""

    path: str  # where it came from, for messages: a file, or file#record
    key: str  # a stable id, unique in the dataset, for the label budget's ranking
    split: str
    class_name: str  # "" when `problem` says the label is unknown
    image: bytes | None  # None: not loaded; image folders read `path` once a class is kept
    problem: str | None = None  # why it is bad input, found while reading


@dataclasses.dataclass(frozen=True)
class Kept:
    """A valid example of a selected class, serialized."""

    key: str
    split: str
    label: int
    example: bytes


def _hash64(data: str | bytes) -> int:
    # hashlib, not hash(): the same value on every worker, run and Python version.
    raw = data.encode() if isinstance(data, str) else data
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")


def unit_hash(data: str | bytes) -> float:
    """A stable pseudo-random number in [0, 1) for a key or a record."""
    return _hash64(data) / 2**64


def budget_rank(seed: int, key: str) -> tuple[int, str]:
    """The label budget keeps, per class, the examples with the smallest rank."""
    return _hash64(f"{seed}:{key}"), key


def split_by_hash(data: str | bytes, eval_fraction: float, test_fraction: float) -> str:
    """train / eval / test for datasets that have no test files of their own."""
    point = unit_hash(data)
    if point < test_fraction:
        return "test"
    return "eval" if point < test_fraction + eval_fraction else "train"


def name_of_label(label: int, class_names: list[str] | None) -> tuple[str, str | None]:
    """The class name of an original integer label, or why it has none."""
    if class_names is None:
        return str(label), None
    if 0 <= label < len(class_names):
        return class_names[label], None
    count = len(class_names)
    return "", f"label {label} is outside the {count} class_names (labels 0..{count - 1})"


def image_problem(data: bytes) -> str | None:
    """Why `data` is not a decodable image, or None when it is one."""
    if not data:
        return "empty image (0 bytes)"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # checksums and structure (PNG CRCs)
        # verify() can't see a truncated JPEG; only decoding does.
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            image.load()
    except Exception as error:  # pylint: disable=broad-except  # Pillow raises many types
        return f"not a decodable image ({type(error).__name__}: {error})"
    if image_format not in DECODABLE_FORMATS:
        supported = ", ".join(sorted(DECODABLE_FORMATS))
        return f"{image_format} images are not supported (only {supported})"
    return None


def encode_png(pixels: bytes, width: int, height: int) -> bytes:
    """PNG bytes of a grayscale image given as row-major uint8 pixels."""
    buffer = io.BytesIO()
    Image.frombytes("L", (width, height), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_example(image: bytes, label: int, label_name: str) -> bytes:
    """A serialized tf.train.Example with the encoded image, its label and label name."""
    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: feature(bytes_list=tf.train.BytesList(value=[image])),
        LABEL_KEY: feature(int64_list=tf.train.Int64List(value=[label])),
        LABEL_NAME_KEY: feature(bytes_list=tf.train.BytesList(value=[label_name.encode()])),
    })).SerializeToString(deterministic=True)
