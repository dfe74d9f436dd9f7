"""IDX files (MNIST, Fashion-MNIST): header checks and chunked, parallel reading."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import math
import os
import struct
from typing import BinaryIO, Iterator

import apache_beam as beam
import tensorflow as tf

from components.image_example_gen.custom_config import ExampleGenOptions
from components.image_example_gen.errors import DatasetError
from components.image_example_gen.layout import require_directory
from components.image_example_gen.records import Item, encode_png, name_of_label, unit_hash

# Records per Beam element: small enough to spread over workers, large enough that
# re-decompressing a .gz up to each chunk's start stays cheap.
CHUNK_SIZE = 5000
_UBYTE = 0x08
_DIMENSIONS = {"images": 3, "labels": 1}


@dataclasses.dataclass(frozen=True)
class IdxFile:
    """An IDX file whose header has been checked."""

    path: str
    dims: tuple[int, ...]

    @property
    def count(self) -> int:
        return self.dims[0]

    @property
    def record_size(self) -> int:
        return math.prod(self.dims[1:])

    @property
    def data_offset(self) -> int:
        return 4 + 4 * len(self.dims)


@dataclasses.dataclass(frozen=True)
class _Chunk:
    images: IdxFile
    labels: IdxFile
    role: str  # "train" (split into train / eval) or "test"
    start: int
    stop: int


@contextlib.contextmanager
def _open(path: str) -> Iterator[BinaryIO]:
    with tf.io.gfile.GFile(path, "rb") as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield unzipped
        else:
            yield raw


def read_header(path: str, kind: str) -> IdxFile:
    """Checks the magic number, dimensions and (uncompressed) size of an IDX file."""
    ndims = _DIMENSIONS[kind]
    expected = f"0x0000{_UBYTE:02x}{ndims:02x}"
    try:
        with _open(path) as file:
            magic = file.read(4)
            if len(magic) < 4 or magic[:3] != bytes([0, 0, _UBYTE]) or magic[3] != ndims:
                raise DatasetError(f"{path}: not an IDX {kind} file (magic number "
                                   f"0x{magic.hex()}, expected {expected})")
            header = file.read(4 * ndims)
    except (OSError, EOFError, tf.errors.OpError) as error:
        raise DatasetError(f"{path}: can't read the IDX header ({error})") from None
    if len(header) < 4 * ndims:
        raise DatasetError(f"{path}: IDX header is truncated")
    idx = IdxFile(path, struct.unpack(f">{ndims}I", header))
    if not path.endswith(".gz"):
        size = tf.io.gfile.stat(path).length
        expected_size = idx.data_offset + idx.count * idx.record_size
        if size != expected_size:
            raise DatasetError(f"{path}: {size} bytes, but its header's dimensions {idx.dims} "
                               f"need {expected_size}")
    return idx


def read_records(idx: IdxFile, start: int, stop: int) -> bytes:
    """The raw bytes of records start..stop-1; a short file is an error naming it."""
    expected = (stop - start) * idx.record_size
    try:
        with _open(idx.path) as file:
            file.seek(idx.data_offset + start * idx.record_size)
            data = file.read(expected)
    except (OSError, EOFError, tf.errors.OpError) as error:
        raise DatasetError(
            f"{idx.path}: can't read records {start}..{stop - 1} ({error})") from None
    if len(data) != expected:
        raise DatasetError(f"{idx.path}: truncated, it ends before record {stop - 1} of the "
                           f"{idx.count} its header announces")
    return data


def find_pair(input_base: str, pattern: str) -> tuple[IdxFile, IdxFile]:
    """The checked (images, labels) files matching `pattern`, e.g. train-* or t10k-*."""
    require_directory(input_base)
    names = sorted(os.path.basename(p) for p in tf.io.gfile.glob(os.path.join(input_base, pattern)))
    images = [n for n in names if "idx3" in n]
    labels = [n for n in names if "idx1" in n]
    if len(images) != 1 or len(labels) != 1:
        raise DatasetError(
            f"{input_base}: expected one images file ({pattern.rstrip('*')}images-idx3-ubyte[.gz]) "
            f"and one labels file ({pattern.rstrip('*')}labels-idx1-ubyte[.gz]), found {names}")
    image_file = read_header(os.path.join(input_base, images[0]), "images")
    label_file = read_header(os.path.join(input_base, labels[0]), "labels")
    if image_file.count != label_file.count:
        raise DatasetError(f"{image_file.path} holds {image_file.count} images but "
                           f"{label_file.path} holds {label_file.count} labels")
    return image_file, label_file


class _ReadChunk(beam.DoFn):
    """Decodes one chunk of records into Items; only kept classes are encoded as PNG."""

    def __init__(self, options: ExampleGenOptions):
        self._class_names = options.dataset.class_names
        self._eval_fraction = options.dataset.eval_fraction
        self._selected = frozenset(options.label_names)

    def process(self, chunk: _Chunk) -> Iterator[Item]:
        labels = read_records(chunk.labels, chunk.start, chunk.stop)
        pixels = read_records(chunk.images, chunk.start, chunk.stop)
        height, width = chunk.images.dims[1:]
        size = chunk.images.record_size
        for offset, label in enumerate(labels):
            index = chunk.start + offset
            key = f"{chunk.role}#{index}"
            split = chunk.role
            if chunk.role == "train" and unit_hash(key) < self._eval_fraction:
                split = "eval"
            name, problem = name_of_label(label, self._class_names)
            image = None
            if problem is None and name in self._selected:
                image = encode_png(pixels[offset * size:(offset + 1) * size], width, height)
            yield Item(f"{chunk.labels.path}#{index}", key, split, name, image, problem)


def read_idx(pipeline: beam.Pipeline, input_base: str, patterns: dict[str, str],
             options: ExampleGenOptions) -> beam.PCollection:
    """Items of the train-* files (train and eval) and the t10k-* files (test)."""
    chunks = []
    for role in ("train", "test"):
        images, labels = find_pair(input_base, patterns[role])
        chunks += [_Chunk(images, labels, role, start, min(start + CHUNK_SIZE, images.count))
                   for start in range(0, images.count, CHUNK_SIZE)]
    return (pipeline
            | "IdxChunks" >> beam.Create(chunks)
            | "SpreadChunks" >> beam.Reshuffle()
            | "ReadIdxChunk" >> beam.ParDo(_ReadChunk(options)))
