"""Cheap config-time look at a dataset: its class names and training counts per class."""

from __future__ import annotations

import collections
import dataclasses

from components.image_example_gen import idx
from components.image_example_gen.csv_manifest import read_manifest, split_rows
from components.image_example_gen.errors import DatasetError
from components.image_example_gen.image_folder import (check_class_folders, count_images,
                                                       list_class_files, list_unlabelled_files)
from components.image_example_gen.layout import IDX_PATTERNS, latest_span_patterns
from components.image_example_gen.options import UNLABELLED, DatasetConfig
from components.image_example_gen.tfrecord import list_record_files


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    """What a dataset holds, read from headers and directory listings only."""

    class_names: list[str]  # in the dataset's order: original label i is class_names[i]
    # Training-source examples per class (an unlabelled folder's under UNLABELLED; a csv's
    # train and eval rows); None if unknown.
    counts: dict[str, int] | None


def _describe_idx(dataset: DatasetConfig) -> DatasetSummary:
    _, labels = idx.find_pair(dataset.path, IDX_PATTERNS["train"])
    idx.find_pair(dataset.path, IDX_PATTERNS["test"])  # checks the test files' headers
    values = idx.read_records(labels, 0, labels.count)
    names = dataset.class_names or [str(label) for label in range(max(values, default=-1) + 1)]
    # Labels without a name are bad input, reported (or skipped) when ingesting.
    counts = collections.Counter(names[value] for value in values if value < len(names))
    return DatasetSummary(names, {name: counts[name] for name in names})


def _describe_image_folder(dataset: DatasetConfig) -> DatasetSummary:
    pattern = latest_span_patterns(dataset)["train"]
    if not dataset.labelled:
        files = list_unlabelled_files(dataset.path, pattern)
        return DatasetSummary([], {UNLABELLED: count_images({UNLABELLED: files})[UNLABELLED]})
    files = list_class_files(dataset.path, pattern)
    folders = sorted(files)
    check_class_folders(dataset.path, folders, dataset.class_names, dataset.classes or [])
    counts = count_images(files)
    class_names = dataset.class_names or folders
    return DatasetSummary(class_names, {name: counts.get(name, 0) for name in class_names})


def _describe_tfrecord(dataset: DatasetConfig) -> DatasetSummary:
    list_record_files(dataset.path, latest_span_patterns(dataset)["train"])
    if dataset.class_names is None:
        raise DatasetError(f"{dataset.path}: tfrecord datasets need class_names, the name of "
                           "each integer label")
    # Counting would read every record; the executor reports the counts instead.
    return DatasetSummary(list(dataset.class_names), None)


def _describe_csv(dataset: DatasetConfig) -> DatasetSummary:
    manifest = read_manifest(dataset.path, latest_span_patterns(dataset)["train"], dataset)
    splits = split_rows(manifest, dataset)
    # Train and eval rows, as for IDX files: the test split is fixed, whatever the budgets.
    counts = collections.Counter(row.class_name for row in manifest.rows
                                 if splits[row.path] != "test")
    return DatasetSummary(manifest.class_names,
                          {name: counts[name] for name in manifest.class_names})


_DESCRIBERS = {"idx": _describe_idx, "image_folder": _describe_image_folder,
               "tfrecord": _describe_tfrecord, "csv": _describe_csv}


def describe_dataset(dataset: DatasetConfig) -> DatasetSummary:
    """Class names and per-class training counts; raises ValueError naming a bad path."""
    return _DESCRIBERS[dataset.format](dataset)


def resolve_label_names(dataset: DatasetConfig, summary: DatasetSummary) -> list[str]:
    """The output classes in label order: `classes` if given, else all the dataset's."""
    if dataset.classes is None:
        return list(summary.class_names)
    unknown = [name for name in dataset.classes if name not in summary.class_names]
    if unknown:
        raise DatasetError(f"{dataset.path}: classes {unknown} are not among the dataset's "
                           f"classes {summary.class_names}")
    return list(dataset.classes)
