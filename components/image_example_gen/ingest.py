"""The Beam graph: read a format, keep the selected classes' valid images, split, sample."""

from __future__ import annotations

import json
import os
from typing import Callable, Iterator

import apache_beam as beam
import tensorflow as tf

from components.image_example_gen.custom_config import ExampleGenOptions
from components.image_example_gen.csv_manifest import read_csv
from components.image_example_gen.errors import BadImageError
from components.image_example_gen.idx import read_idx
from components.image_example_gen.image_folder import read_image_folder
from components.image_example_gen.layout import SPLITS
from components.image_example_gen.options import UNLABELLED_ID
from components.image_example_gen.records import Item, Kept, image_problem, make_example
from components.image_example_gen.sampling import SampleBudget
from components.image_example_gen.tfrecord import read_tfrecords
from transform.image_limits import ImageLimits

Source = Callable[[beam.Pipeline, str, dict[str, str], ExampleGenOptions], beam.PCollection]
SOURCES: dict[str, Source] = {
    "idx": read_idx, "image_folder": read_image_folder, "tfrecord": read_tfrecords,
    "csv": read_csv}
_SKIPPED = "skipped"
_UNSELECTED = "unselected"


def _read_file(path: str, limits: ImageLimits) -> tuple[bytes, str | None]:
    """The file's bytes, or why not: unreadable, or over the byte cap (then never read)."""
    try:
        too_big = limits.size_problem(tf.io.gfile.stat(path).length)
        if too_big:
            return b"", too_big
        with tf.io.gfile.GFile(path, "rb") as file:
            return file.read(), None
    except (OSError, tf.errors.OpError) as error:
        return b"", f"can't read the file ({error})"


class _SelectAndValidate(beam.DoFn):
    """Relabels the selected classes' valid images; the rest is unselected or bad input.
    Without `labelled`, each example's label is dropped; Kept.label still stratifies the
    budgets (UNLABELLED_ID for an unlabelled folder's images)."""

    def __init__(self, label_names: list[str], on_bad_image: str, labelled: bool,
                 limits: ImageLimits):
        self._labels = {name: label for label, name in enumerate(label_names)}
        self._limits = limits
        self._fail = on_bad_image == "fail"
        self._labelled = labelled

    def process(self, item: Item) -> Iterator[Kept | beam.pvalue.TaggedOutput]:
        if item.class_name and item.class_name not in self._labels:
            # Left out by design, not bad input: only counted, per split.
            yield beam.pvalue.TaggedOutput(_UNSELECTED, (_UNSELECTED, item.split))
            return
        image, problem = item.image, item.problem
        if problem is None and image is None:
            image, problem = _read_file(item.path, self._limits)
        # The header's claims first: Pillow decodes the whole image.
        problem = problem or self._limits.problem(image) or image_problem(image)
        if problem:
            yield self._bad(item.path, problem)
            return
        label = self._labels.get(item.class_name, UNLABELLED_ID)
        example = make_example(image, label, item.class_name) if self._labelled else (
            make_example(image, UNLABELLED_ID, ""))
        yield Kept(item.key, item.split, label, example)

    def _bad(self, path: str, problem: str) -> beam.pvalue.TaggedOutput:
        if self._fail:
            raise BadImageError(f"{path}: {problem} (dataset on_bad_image is 'fail'; "
                                "'skip' skips bad inputs and lists them in skipped_images.json)")
        return beam.pvalue.TaggedOutput(_SKIPPED, {"path": path, "reason": problem})


def _split_index(kept: Kept, num_splits: int) -> int:
    del num_splits  # always len(SPLITS)
    return SPLITS.index(kept.split)


def _serialized(kept: Kept) -> bytes:
    return kept.example


def _count_key(kept: Kept, labelled: bool) -> tuple[str, str, int]:
    return "examples", kept.split, kept.label if labelled else UNLABELLED_ID


def _count_line(key_and_count: tuple[tuple, int]) -> str:
    key, count = key_and_count
    return json.dumps([*key, count])


def _skipped_line(entry: dict[str, str]) -> str:
    return json.dumps(["skipped", entry])


def _write_lines(lines: list[str], path: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as file:
        file.write("".join(f"{line}\n" for line in lines))


def _write_stats(kept: dict[str, beam.PCollection], unselected: beam.PCollection,
                 skipped: beam.PCollection, stats_path: str, labelled: bool) -> None:
    """For the executor, one JSON line per count and per skipped input: ["examples", split,
    label, count] (label UNLABELLED_ID for unlabelled examples), ["unselected", split, count]
    and ["skipped", {path, reason}]."""
    keys = [kept[split] | f"CountKey[{split}]" >> beam.Map(_count_key, labelled)
            for split in SPLITS]
    counts = ((*keys, unselected)
              | "AllCountKeys" >> beam.Flatten()
              | "Count" >> beam.combiners.Count.PerElement()
              | "CountLines" >> beam.Map(_count_line))
    _ = ((counts, skipped | "SkippedLines" >> beam.Map(_skipped_line))
         | "AllStats" >> beam.Flatten()
         | "StatsToList" >> beam.combiners.ToList()
         | "WriteStats" >> beam.Map(_write_lines, stats_path))


def build_splits(pipeline: beam.Pipeline, input_base: str, patterns: dict[str, str],
                 options: ExampleGenOptions, stats_path: str) -> dict[str, beam.PCollection]:
    """Split name -> serialized tf.Examples; counts and skipped inputs go to `stats_path`."""
    dataset = options.dataset
    items = SOURCES[dataset.format](pipeline, input_base, patterns, options)
    results = items | "SelectAndValidate" >> beam.ParDo(_SelectAndValidate(
        options.label_names, dataset.on_bad_image, dataset.labelled,
        options.limits)).with_outputs(
            _SKIPPED, _UNSELECTED, main="kept")
    by_split = results.kept | "BySplit" >> beam.Partition(_split_index, len(SPLITS))
    kept = dict(zip(SPLITS, by_split))
    complement = dataset.beyond_label_budget
    if dataset.label_budget is not None:
        kept["train"] = kept["train"] | "LabelBudget" >> SampleBudget(
            dataset.label_budget, options.seed, options.label_names, dataset.path,
            complement=complement)
    if dataset.eval_label_budget is not None:
        kept["eval"] = kept["eval"] | "EvalLabelBudget" >> SampleBudget(
            dataset.eval_label_budget, options.seed, options.label_names, dataset.path,
            "eval_label_budget", "eval", complement)
    examples = {split: kept[split] | f"Serialized[{split}]" >> beam.Map(_serialized)
                for split in SPLITS}
    _write_stats(kept, results[_UNSELECTED], results[_SKIPPED], stats_path, dataset.labelled)
    return examples
