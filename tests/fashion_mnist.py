"""Small real Fashion-MNIST subsets in IDX format, cut from Debian's dataset-fashion-mnist."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzip or not) as a uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: str, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def write_subset(dst: str, n_train: int, n_test: int) -> str:
    """The first n_train / n_test images and labels of each file, written under dst."""
    os.makedirs(dst, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{prefix}-{kind}-ubyte.gz"
            write_idx(os.path.join(dst, name), read_idx(os.path.join(FASHION_MNIST_DIR, name))[:n])
    return dst


def write_image_span(root, span: int, classes: dict[int, str], start: int,
                     per_class: int) -> None:
    """Images of the test file as root/span-<span>/<class name>/<index>.png: per class, the
    per_class images after the first `start` of that class."""
    from PIL import Image

    images = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
    for label, name in classes.items():
        folder = os.path.join(root, f"span-{span}", name)
        os.makedirs(folder)
        for index in np.flatnonzero(labels == label)[start:start + per_class]:
            Image.fromarray(images[index]).save(os.path.join(folder, f"{index}.png"))
