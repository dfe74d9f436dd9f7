"""Real small test data: image files (good and broken), IDX files and TFRecords."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF"}


def image_bytes(size: tuple[int, int], mode: str = "RGB", suffix: str = ".png",
                seed: int = 0) -> bytes:
    """An encoded image of random pixels; suffix picks the format, case-insensitively."""
    channels = {"L": (), "RGB": (3,)}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], *channels),
                                                  dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format=FORMATS[suffix.lower()])
    return buffer.getvalue()


def write_image(path: Path, size: tuple[int, int] = (8, 6), mode: str = "RGB",
                seed: int = 0) -> bytes:
    """Writes an image whose format follows path's suffix; returns its bytes."""
    data = image_bytes(size, mode, path.suffix, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def write_broken(path: Path, kind: str) -> None:
    """A real broken file: 'zero_byte', 'truncated' (JPEG), 'corrupt' (PNG) or 'text'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zero_byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(image_bytes((64, 48), suffix=".jpg")[:300])
    elif kind == "corrupt":
        data = bytearray(image_bytes((16, 16), suffix=".png"))
        data[60:80] = bytes(20)  # inside the image data: the chunk CRC no longer matches
        path.write_bytes(bytes(data))
    elif kind == "text":
        path.write_text("not an image\n")
    else:
        raise ValueError(kind)


def write_image_folder(root: Path, counts: dict[str, int]) -> dict[str, bytes]:
    """root/<class>/<i>.png images; returns relative path -> bytes."""
    written = {}
    for class_index, (name, count) in enumerate(counts.items()):
        for i in range(count):
            relative = f"{name}/{i:03d}.png"
            written[relative] = write_image(root / relative, seed=100 * class_index + i)
    return written


def write_idx(directory: Path, prefix: str, images: np.ndarray, labels: np.ndarray,
              compress: bool = True) -> None:
    """<prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte, gzipped if `compress`."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    opener = gzip.open if compress else open
    image_header = struct.pack(">IIII", 0x803, *images.shape)
    with opener(directory / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as file:
        file.write(image_header + images.astype(np.uint8).tobytes())
    with opener(directory / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as file:
        file.write(struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes())


def read_idx(path: Path) -> np.ndarray:
    """An IDX file as an array (test oracle, independent of the reader under test)."""
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndims = data[3]
    dims = struct.unpack(f">{ndims}I", data[4:4 + 4 * ndims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndims).reshape(dims)


def write_fashion_subset(source: Path, directory: Path, n_train: int, n_test: int) -> None:
    """The first n_train / n_test real Fashion-MNIST images, as gzipped IDX files."""
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")[:count]
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")[:count]
        write_idx(directory, prefix, images, labels)


def tf_example(image: bytes | None, label: int | None) -> bytes:
    """A serialized tf.Example with an 'image' bytes and a 'label' int64 feature."""
    feature = {}
    if image is not None:
        feature["image"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    if label is not None:
        feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecord(path: Path, records: list[bytes]) -> None:
    """A TFRecord file, gzipped when the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if path.suffix == ".gz" else "")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)


def crafted_gif(screen: tuple[int, int], frames: list[tuple[int, int]],
                local_table: bool = False) -> bytes:
    """A GIF built block by block: a 2-colour global table, a comment extension, and one
    image descriptor (optionally with a local table) per frame, each with a few data bytes."""
    data = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    data += b"\x21\xfe\x05hello\x00"
    for width, height in frames:
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0x81 if local_table else 0)
        data += b"\0" * 12 if local_table else b""
        data += b"\x02" + b"\x03\x84\x01\x00" + b"\x00"  # LZW code size, one sub-block, end
    return data + b"\x3b"
