"""TFRecord files of tf.Examples holding encoded image bytes and an int64 label."""

from __future__ import annotations

import os
from typing import Iterator

import apache_beam as beam
import tensorflow as tf
from google.protobuf.message import DecodeError

from components.image_example_gen.custom_config import ExampleGenOptions
from components.image_example_gen.errors import DatasetError
from components.image_example_gen.layout import (require_directory, single_pattern,
                                                 window_patterns)
from components.image_example_gen.records import Item, name_of_label, split_by_hash


def list_record_files(input_base: str, pattern: str) -> list[str]:
    """The files `pattern` matches; none at all is an error naming the pattern."""
    require_directory(input_base)
    files = sorted(path for path in tf.io.gfile.glob(os.path.join(input_base, pattern))
                   if not os.path.basename(path).startswith(".") and not tf.io.gfile.isdir(path))
    if not files:
        raise DatasetError(f"{os.path.join(input_base, pattern)}: no TFRecord files")
    return files


class _ReadFile(beam.DoFn):
    """Items of one TFRecord file (gzip when its name ends in .gz), one per record."""

    def __init__(self, input_base: str, options: ExampleGenOptions):
        self._input_base = input_base.rstrip("/") + "/"
        self._dataset = options.dataset

    def process(self, path: str) -> Iterator[Item]:
        # Reading by file, not with ReadFromTFRecord, gives each record its index: a
        # unique budget key and a bad record named as file#index.
        records = tf.data.TFRecordDataset(path, "GZIP" if path.endswith(".gz") else "")
        index = -1
        try:
            for index, record in enumerate(records.as_numpy_iterator()):
                yield self._to_item(path, index, record)
        except tf.errors.OpError as error:
            raise DatasetError(f"{path}: not a readable TFRecord file after {index + 1} "
                               f"record(s) ({error.message})") from None

    def _to_item(self, path: str, index: int, record: bytes) -> Item:
        dataset = self._dataset
        # The record's bytes, not its position, pick its split: resharding keeps splits.
        split = split_by_hash(record, dataset.eval_fraction, dataset.test_fraction)
        key = f"{path.removeprefix(self._input_base)}#{index}"
        image, label, problem = _parse(record, dataset.image_key, dataset.label_key)
        name = ""
        if problem is None:
            name, problem = name_of_label(label, dataset.class_names)
        return Item(f"{path}#{index}", key, split, name, image, problem)


def _parse(record: bytes, image_key: str, label_key: str) -> tuple[bytes | None, int, str | None]:
    """(image bytes, label, problem) of a serialized tf.Example."""
    try:
        feature = tf.train.Example.FromString(record).features.feature
    except DecodeError as error:
        return None, -1, f"not a tf.train.Example ({error})"
    images = feature[image_key].bytes_list.value if image_key in feature else []
    labels = feature[label_key].int64_list.value if label_key in feature else []
    if len(images) != 1:
        return None, -1, f"expected one bytes value in feature {image_key!r}, found {len(images)}"
    if len(labels) != 1:
        return None, -1, f"expected one int64 value in feature {label_key!r}, found {len(labels)}"
    return images[0], labels[0], None


def read_tfrecords(pipeline: beam.Pipeline, input_base: str, patterns: dict[str, str],
                   options: ExampleGenOptions) -> beam.PCollection:
    """Items of every record in the matched files, read in parallel by file."""
    files = [path for pattern in window_patterns(input_base, single_pattern(patterns),
                                                 options.dataset.spans)
             for path in list_record_files(input_base, pattern)]
    return (pipeline
            | "ListRecordFiles" >> beam.Create(files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadRecords" >> beam.ParDo(_ReadFile(input_base, options)))
