"""Where each format keeps its files: the input patterns, with or without span folders."""

from __future__ import annotations

import re

import tensorflow as tf

from components.image_example_gen.errors import DatasetError
from components.image_example_gen.options import DatasetConfig

SPLITS = ("train", "eval", "test")
IDX_PATTERNS = {"train": "train-*", "eval": "train-*", "test": "t10k-*"}
_FILES_PATTERN = {"image_folder": "*/*", "tfrecord": "*"}
_SPAN_DIR = re.compile(r"^span-(\d+)/?$")
MAX_SPAN = 2**63 - 1


def require_directory(path: str) -> None:
    """A missing dataset path is an error naming it."""
    if not tf.io.gfile.isdir(path):
        raise DatasetError(f"dataset path {path} does not exist or is not a directory")


def _span_number(root: str, digits: str) -> int:
    """N of a span-N folder; a folder TFX would misread is an error naming it."""
    folder = f"{root.rstrip('/')}/span-{digits}"
    if digits != str(int(digits)):
        raise DatasetError(f"{folder}: span folders are span-<N> without leading zeros (TFX "
                           f"rebuilds the folder name from N: span-{int(digits)})")
    if int(digits) > MAX_SPAN:
        raise DatasetError(f"{folder}: span numbers go up to {MAX_SPAN} (ML Metadata keeps "
                           "them as 64-bit integers)")
    return int(digits)


def latest_span(root: str) -> int | None:
    """The largest N of the root's span-N folders, or None when it has none."""
    if not tf.io.gfile.isdir(root):
        return None
    spans = [_span_number(root, m.group(1))
             for m in map(_SPAN_DIR.match, tf.io.gfile.listdir(root)) if m]
    return max(spans, default=None)


def input_patterns(dataset: DatasetConfig) -> dict[str, str]:
    """Split name -> file pattern relative to dataset.path, as the FileBasedDriver expects."""
    if dataset.format == "idx":
        return dict(IDX_PATTERNS)
    # An unlabelled image folder holds its images directly. A csv's pattern is its manifest
    # alone, so the input fingerprint is the manifest's size and mtime, not its images'.
    files = "*" if dataset.format == "image_folder" and not dataset.labelled else (
        dataset.manifest if dataset.format == "csv" else _FILES_PATTERN[dataset.format])
    # All three splits read the same files; the executor splits them (by hash or manifest).
    pattern = files if latest_span(dataset.path) is None else f"span-{{SPAN}}/{files}"
    return {split: pattern for split in SPLITS}


def latest_span_patterns(dataset: DatasetConfig) -> dict[str, str]:
    """input_patterns with {SPAN} replaced by the latest span, as the driver would."""
    span = latest_span(dataset.path)
    return {split: pattern.replace("{SPAN}", str(span))
            for split, pattern in input_patterns(dataset).items()}


def single_pattern(patterns: dict[str, str]) -> str:
    """The one pattern formats split by hash share across train / eval / test."""
    distinct = sorted(set(patterns.values()))
    if len(distinct) != 1:
        raise ValueError(f"train, eval and test must read the same files here; got {patterns}")
    return distinct[0]


def window_patterns(input_base: str, pattern: str, spans: int) -> list[str]:
    """A resolved `span-<S>/...` pattern widened to the newest `spans` spans up to S that
    exist (a rolling window); other patterns, or `spans` 1, stay as they are."""
    match = re.match(r"^span-(\d+)/(.*)$", pattern)
    if match is None or spans == 1:
        return [pattern]
    newest, rest = int(match.group(1)), match.group(2)
    return [f"span-{span}/{rest}" for span in range(max(0, newest - spans + 1), newest + 1)
            if tf.io.gfile.isdir(f"{input_base.rstrip('/')}/span-{span}")]
