"""CSV manifests: a header row, then an image path and a label value per row.

The manifest is read and split in plain Python, before Beam reads any image: the split is
stratified by class, which needs every row's class first. That is meant for manifests of
thousands of rows (ELPV has 2,624), not millions.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import math
import os
import posixpath
from typing import Iterator

import apache_beam as beam
import tensorflow as tf

from components.image_example_gen.custom_config import ExampleGenOptions
from components.image_example_gen.errors import DatasetError
from components.image_example_gen.layout import require_directory, single_pattern
from components.image_example_gen.options import DatasetConfig, class_name_problem
from components.image_example_gen.records import Item, budget_rank
from components.image_example_gen.sampling import stratified_quotas


@dataclasses.dataclass(frozen=True)
class Row:
    """A manifest row whose path and label passed the checks."""

    line: int  # in the file, the header being line 1
    path: str  # normalized, relative to the manifest's folder
    class_name: str


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A checked manifest: its rows and the class names in label order."""

    path: str
    rows: list[Row]
    class_names: list[str]


def _read_text(path: str) -> str:
    """The manifest's text; a missing file is an error naming it and what the folder holds."""
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
    except tf.errors.NotFoundError:
        folder = os.path.dirname(path)
        found = sorted(tf.io.gfile.listdir(folder))
        raise DatasetError(f"{path}: no manifest file (the manifest key names it; {folder} "
                           f"holds {found[:10]})") from None
    except tf.errors.OpError as error:
        raise DatasetError(f"{path}: can't read the manifest ({error.message})") from None
    try:
        return data.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not a column
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error})") from None


def _records(path: str, text: str, columns: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, column -> value) of each data row; blank lines are not rows."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path}: empty; expected a header row naming the columns "
                               f"({', '.join(columns)})")
        missing = [column for column in columns if column not in header]
        repeated = sorted({column for column in header if header.count(column) > 1})
        if missing or repeated:
            raise DatasetError(f"{path}: the header has no column(s) {missing} or repeats "
                               f"{repeated}; found columns {header}")
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise DatasetError(f"{path}, line {reader.line_num}: {len(fields)} fields, "
                                   f"but the header has {len(header)} ({','.join(header)})")
            yield reader.line_num, dict(zip(header, fields))
    except csv.Error as error:
        raise DatasetError(f"{path}, line {reader.line_num}: not valid CSV ({error})") from None


def _relative_path(value: str, where: str) -> str:
    """The path normalized; refused when empty, absolute or leaving the manifest's folder."""
    if not value.strip():
        raise DatasetError(f"{where}: empty image path")
    normal = posixpath.normpath(value)
    if value.startswith("/") or "://" in value or normal == ".." or normal.startswith("../"):
        raise DatasetError(f"{where}: image path {value!r} must be relative to the manifest's "
                           "folder and stay inside it")
    return normal


def _class_of(value: str, dataset: DatasetConfig, where: str) -> str:
    """The class of a label value by the dataset's rule (a threshold, or the value itself)."""
    column = dataset.label_column
    if dataset.threshold is not None:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise DatasetError(f"{where}: {value!r} in column {column!r} is not a number, "
                               f"which threshold {dataset.threshold:g} compares")
        return dataset.class_names[int(number >= dataset.threshold)]
    problem = class_name_problem(value)
    if problem:
        raise DatasetError(f"{where}: column {column!r}: {problem}")
    if dataset.class_names is not None and value not in dataset.class_names:
        raise DatasetError(f"{where}: {value!r} in column {column!r} is not in class_names "
                           f"{dataset.class_names}")
    return value


def read_manifest(input_base: str, pattern: str, dataset: DatasetConfig) -> Manifest:
    """The checked rows of the manifest at input_base/pattern; any problem of the manifest
    itself (not of an image) is an error naming the file and line."""
    require_directory(input_base)
    path = os.path.join(input_base, pattern)
    rows, lines = [], {}
    columns = [dataset.path_column, dataset.label_column]
    for line, record in _records(path, _read_text(path), columns):
        where = f"{path}, line {line}"
        relative = _relative_path(record[dataset.path_column], where)
        if relative in lines:
            raise DatasetError(f"{where}: image {relative!r} is listed again (first on line "
                               f"{lines[relative]})")
        lines[relative] = line
        rows.append(Row(line, relative, _class_of(record[dataset.label_column], dataset, where)))
    if not rows:
        raise DatasetError(f"{path}: no rows below the header")
    found = {row.class_name for row in rows}
    class_names = dataset.class_names or sorted(found)
    empty = [name for name in class_names if name not in found]
    if empty:
        rule = f" (threshold {dataset.threshold:g})" if dataset.threshold is not None else ""
        raise DatasetError(f"{path}: no rows of class(es) {empty} in column "
                           f"{dataset.label_column!r}{rule}")
    return Manifest(path, rows, list(class_names))


def split_rows(manifest: Manifest, dataset: DatasetConfig) -> dict[str, str]:
    """Image path -> train / eval / test: per class, the rows ranked by split_seed alone,
    the first test_fraction (of the whole, rounded, shared by largest remainder) to test,
    the next eval_fraction of the rest to eval. Every class is split, selected or not."""
    by_label: dict[int, list[Row]] = collections.defaultdict(list)
    for row in manifest.rows:
        by_label[manifest.class_names.index(row.class_name)].append(row)
    counts = {label: len(rows) for label, rows in by_label.items()}
    test = stratified_quotas(counts, round(len(manifest.rows) * dataset.test_fraction))
    rest = {label: count - test[label] for label, count in counts.items()}
    evaluate = stratified_quotas(rest, round(sum(rest.values()) * dataset.eval_fraction))
    splits = {}
    for label, rows in by_label.items():
        ranked = sorted(rows, key=lambda row: budget_rank(dataset.split_seed, row.path))
        for index, row in enumerate(ranked):
            splits[row.path] = ("test" if index < test[label] else
                                "eval" if index < test[label] + evaluate[label] else "train")
    return splits


def _to_item(entry: tuple[Row, str], manifest: str, selected: frozenset[str]) -> Item:
    row, split = entry
    path = os.path.join(os.path.dirname(manifest), row.path)
    problem = None
    # Only a kept class's images are read; a missing one is named with its row.
    if row.class_name in selected and not tf.io.gfile.exists(path):
        problem = f"no such file (line {row.line} of {manifest})"
    return Item(path, row.path, split, row.class_name, None, problem)


def read_csv(pipeline: beam.Pipeline, input_base: str, patterns: dict[str, str],
             options: ExampleGenOptions) -> beam.PCollection:
    """Items of the manifest's rows, split already; the images are read once a class is
    kept."""
    manifest = read_manifest(input_base, single_pattern(patterns), options.dataset)
    splits = split_rows(manifest, options.dataset)
    entries = [(row, splits[row.path]) for row in manifest.rows]
    return (pipeline
            | "ListManifestRows" >> beam.Create(entries)
            | "ToItems" >> beam.Map(_to_item, manifest.path, frozenset(options.label_names)))
