"""ImageExampleGen's executor: TFX's ExampleGen Do, plus spans, labels and a bad-input report."""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, driver, utils
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen.custom_config import ExampleGenOptions, from_exec_properties
from components.image_example_gen.errors import DatasetError, find_dataset_error
from components.image_example_gen.ingest import build_splits
from components.image_example_gen.label_checks import ClassCounts, class_problems
from components.image_example_gen.layout import SPLITS
from components.image_example_gen.options import UNLABELLED, UNLABELLED_ID
from transform.features import LABEL_VOCABULARY_FILE

SKIPPED_IMAGES_FILE = "skipped_images.json"
SKIPPED_IMAGES_PROPERTY = "skipped_images"
SPLIT_COUNTS_PROPERTY = "split_counts"
CLASS_COUNTS_PROPERTY = "class_counts"
UNSELECTED_PROPERTY = "unselected_examples"
# Beam writes its counts here, inside the artifact so that remote workers reach it too.
_STATS_FILE = "_image_example_gen_stats.jsonl"
_STATS_PATH_KEY = "_image_example_gen_stats_path"


def _input_config(exec_properties: dict[str, Any]) -> example_gen_pb2.Input:
    return proto_utils.json_to_proto(
        exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input())


def _resolve_spans(exec_properties: dict[str, Any], examples: types.Artifact) -> None:
    """Does the FileBasedDriver's work when it didn't run and no probe did it (Kubeflow V2).

    Patterns still holding {SPAN}, {VERSION} or date specs get the latest span, and the
    artifact gets the span, version and fingerprint properties the driver would set.
    """
    input_config = _input_config(exec_properties)
    if not any(any(utils.verify_split_pattern_specs(split)) for split in input_config.splits):
        if utils.SPAN_PROPERTY_NAME in exec_properties:
            # Resolved before the executor, by a driver or a Kubeflow span probe.
            exec_properties.setdefault(utils.VERSION_PROPERTY_NAME, None)
            driver.update_output_artifact(exec_properties, examples.mlmd_artifact)
        return
    range_config = None
    if exec_properties.get(standard_component_specs.RANGE_CONFIG_KEY):
        range_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.RANGE_CONFIG_KEY],
            range_config_pb2.RangeConfig())
    fingerprint, span, version = utils.calculate_splits_fingerprint_span_and_version(
        exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config.splits,
        range_config)  # also replaces the specs in input_config's patterns
    exec_properties[standard_component_specs.INPUT_CONFIG_KEY] = proto_utils.proto_to_json(
        input_config)
    exec_properties[utils.SPAN_PROPERTY_NAME] = span
    exec_properties[utils.VERSION_PROPERTY_NAME] = version
    exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = fingerprint
    driver.update_output_artifact(exec_properties, examples.mlmd_artifact)
    logging.info("Resolved span %s, version %s without the driver.", span, version)


def _read_stats(stats_path: str, label_names: list[str]
                ) -> tuple[ClassCounts, dict[str, int], list[dict[str, str]]]:
    """(examples per split and class, unselected per split, skipped inputs) as Beam wrote
    them; `label_names` [UNLABELLED] for examples without labels."""
    counts: ClassCounts = {split: dict.fromkeys(label_names, 0) for split in SPLITS}
    unselected = dict.fromkeys(SPLITS, 0)
    skipped = []
    with tf.io.gfile.GFile(stats_path) as file:
        for line in file:
            kind, *value = json.loads(line)
            if kind == "skipped":
                skipped.append(value[0])
            elif kind == "examples":
                split, label, count = value
                name = UNLABELLED if label == UNLABELLED_ID else label_names[label]
                counts[split][name] = count
            else:
                split, count = value
                unselected[split] = count
    return counts, unselected, sorted(skipped, key=lambda entry: entry["path"])


def _write_reports(examples: types.Artifact, label_names: list[str],
                   stats_path: str) -> ClassCounts:
    """label_vocabulary.txt, skipped_images.json and the count properties of the artifact;
    returns the examples per split and class. `label_names` is empty for unlabelled
    examples, which are counted under UNLABELLED."""
    class_counts, unselected, skipped = _read_stats(stats_path, label_names or [UNLABELLED])
    counts = {split: sum(per_class.values()) for split, per_class in class_counts.items()}
    tf.io.gfile.remove(stats_path)
    with tf.io.gfile.GFile(os.path.join(examples.uri, LABEL_VOCABULARY_FILE), "w") as file:
        file.write("".join(f"{name}\n" for name in label_names))
    with tf.io.gfile.GFile(os.path.join(examples.uri, SKIPPED_IMAGES_FILE), "w") as file:
        json.dump(skipped, file, indent=1)
    examples.set_int_custom_property(SKIPPED_IMAGES_PROPERTY, len(skipped))
    examples.set_string_custom_property(SPLIT_COUNTS_PROPERTY, json.dumps(counts))
    examples.set_string_custom_property(CLASS_COUNTS_PROPERTY, json.dumps(class_counts))
    examples.set_string_custom_property(UNSELECTED_PROPERTY, json.dumps(unselected))
    logging.info("Examples per split %s; unselected classes' examples %s.", counts, unselected)
    if skipped:
        logging.warning("Skipped %d bad input(s), listed in %s.", len(skipped),
                        os.path.join(examples.uri, SKIPPED_IMAGES_FILE))
    return class_counts


def _check_labels(options: ExampleGenOptions, class_counts: ClassCounts) -> None:
    """Fails the component, so nothing downstream trains, on a missing or swamped class."""
    problems = class_problems(class_counts, options.label_names,
                              options.dataset.max_class_imbalance)
    if problems:
        raise DatasetError(f"{options.dataset.path}: the examples can't train or evaluate a "
                           f"classifier of {options.label_names}: " + "; ".join(problems))


def _check_not_empty(options: ExampleGenOptions, class_counts: ClassCounts) -> None:
    """Unlabelled examples need no classes, but pretraining needs train and eval images."""
    empty = [split for split in ("train", "eval") if not sum(class_counts[split].values())]
    if empty:
        raise DatasetError(f"{options.dataset.path}: no {' and no '.join(empty)} images "
                           "left to pretrain on")


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """Reads IDX files, image folders, TFRecords or CSV manifests into train / eval / test
    tf.Examples."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        # Required by the base class, unused: GenerateExamplesByBeam reads all splits at once.
        raise NotImplementedError("ImageExampleGen overrides GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,
                               exec_properties: dict[str, Any]) -> dict[str, beam.PCollection]:
        """Split name -> serialized tf.Examples with image bytes, label and label_name."""
        patterns = {split.name: split.pattern for split in _input_config(exec_properties).splits}
        if sorted(patterns) != sorted(SPLITS):
            raise ValueError(f"ImageExampleGen needs input splits {list(SPLITS)}, got "
                             f"{sorted(patterns)}")
        return build_splits(pipeline, exec_properties[standard_component_specs.INPUT_BASE_KEY],
                            patterns, from_exec_properties(exec_properties),
                            exec_properties[_STATS_PATH_KEY])

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]], exec_properties: dict[str, Any]) -> None:
        """Writes the splits as TFX's ExampleGen does, then the label vocabulary and report."""
        exec_properties = dict(exec_properties)
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        _resolve_spans(exec_properties, examples)
        stats_path = os.path.join(examples.uri, _STATS_FILE)
        exec_properties[_STATS_PATH_KEY] = stats_path
        try:
            super().Do(input_dict, output_dict, exec_properties)
        except Exception as error:  # pylint: disable=broad-except
            dataset_error = find_dataset_error(error)
            if dataset_error is None:
                raise
            # The file and its problem, not a Beam stack trace, is what the user needs.
            raise dataset_error from None
        options = from_exec_properties(exec_properties)
        labelled = options.dataset.labelled
        class_counts = _write_reports(examples, options.label_names if labelled else [],
                                      stats_path)
        if labelled:
            _check_labels(options, class_counts)
        else:
            _check_not_empty(options, class_counts)
