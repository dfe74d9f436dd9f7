"""Bad labels stop a run before anything trains: a class far rarer than another, a class
missing from a split, too few examples for the label budget. Checked when the config is
validated (from the datasets' headers) and, for every run, in ImageExampleGen after splitting.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from google.protobuf import message
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import DatasetError, Executor, ImageExampleGen
from components.image_example_gen.label_checks import class_problems
from components.image_example_gen.options import DatasetConfig
from pipeline.config import (ConfigError, PipelineDatasetConfig, check_datasets,
                             parse_config)
from tests import image_files

NAMES = ["a", "b"]


def write_dataset(directory: Path, train: dict[int, int], test: dict[int, int]) -> Path:
    """IDX files with the given examples per label in the train and test files."""
    for prefix, counts in (("train", train), ("t10k", test)):
        labels = np.repeat(list(counts), list(counts.values()))
        images = np.random.default_rng(len(labels)).integers(0, 256, (len(labels), 5, 5))
        image_files.write_idx(directory, prefix, images, labels)
    return directory


def ingest(out: Path, dataset: DatasetConfig) -> standard_artifacts.Examples:
    """ImageExampleGen's executor on real Beam, given exec_properties as an orchestrator
    passes them (protos as JSON)."""
    properties = {key: proto_utils.proto_to_json(value) if isinstance(value, message.Message)
                  else value
                  for key, value in ImageExampleGen(dataset, NAMES, seed=1).exec_properties.items()
                  if value is not None}
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, properties)
    return examples


def pipeline_dataset(path: Path, **changes) -> PipelineDatasetConfig:
    """A dataset as a pipeline config gives it: the label checks on by default."""
    return PipelineDatasetConfig(format="idx", path=str(path), class_names=NAMES, **changes)


def test_class_problems_name_the_split_and_the_classes():
    counts = {"train": {"a": 100, "b": 5}, "eval": {"a": 9, "b": 1}, "test": {"a": 3, "b": 0}}
    assert class_problems(counts, NAMES, 10.0) == [
        "train split: class 'a' has 100 examples but 'b' only 5, 20.0 times fewer "
        "(max_class_imbalance is 10)",
        "test split: no examples of class(es) ['b']"]
    assert class_problems(counts, NAMES, None) == []
    assert class_problems(counts, NAMES, 100.0) == ["test split: no examples of class(es) ['b']"]


def test_pipeline_datasets_check_labels_by_default_the_component_alone_does_not():
    assert pipeline_dataset(Path("/d")).max_class_imbalance == 10.0
    assert DatasetConfig(format="idx", path="/d").max_class_imbalance is None


def test_balanced_dataset_passes_and_records_class_counts(tmp_path):
    data = write_dataset(tmp_path / "data", {0: 60, 1: 60}, {0: 10, 1: 10})
    examples = ingest(tmp_path / "out", pipeline_dataset(data))
    counts = json.loads(examples.get_string_custom_property("class_counts"))
    assert counts["test"] == {"a": 10, "b": 10}
    assert counts["train"]["a"] + counts["eval"]["a"] == 60
    assert json.loads(examples.get_string_custom_property("split_counts")) == {
        split: sum(per_class.values()) for split, per_class in counts.items()}


@pytest.mark.parametrize("train, test, changes, message", [
    ({0: 240, 1: 12}, {0: 10, 1: 10}, {}, r"train split: class 'a' has \d+ examples but 'b' "
     r"only \d+, 2\d\.\d times fewer \(max_class_imbalance is 10\)"),
    ({0: 60, 1: 60}, {0: 10}, {}, r"test split: no examples of class\(es\) \['b'\]"),
    ({0: 60, 1: 60}, {0: 10, 1: 10}, {"label_budget": 1},
     r"train split: no examples of class\(es\) \['[ab]'\]"),
    ({0: 60, 1: 60}, {0: 10, 1: 10}, {"label_budget": 500},
     r"label_budget 500 exceeds the \d+ training examples of the selected classes"),
], ids=["imbalanced", "missing-from-test", "budget-too-small", "budget-too-large"])
def test_example_gen_fails_before_training_naming_the_problem(tmp_path, train, test, changes,
                                                              message):
    data = write_dataset(tmp_path / "data", train, test)
    with pytest.raises(DatasetError, match=message) as error:
        ingest(tmp_path / "out", pipeline_dataset(data, **changes))
    assert str(data) in str(error.value)


def test_imbalance_can_be_allowed(tmp_path):
    data = write_dataset(tmp_path / "data", {0: 240, 1: 12}, {0: 10, 1: 10})
    ingest(tmp_path / "out", pipeline_dataset(data, max_class_imbalance=25))


@pytest.mark.parametrize("train, changes, message", [
    ({0: 240, 1: 12}, {}, r"target.max_class_imbalance: .*class 'a' has 240 examples but 'b' "
     r"only 12, 20.0 times fewer"),
    ({0: 60}, {}, r"target.max_class_imbalance: .*no examples of class\(es\) \['b'\]"),
    ({0: 30, 1: 30}, {"label_budget": 100}, r"target.label_budget: 100 train images asked "
     r"for, but .* has about 55 in the train split"),
    ({0: 30, 1: 30}, {"eval_label_budget": 20}, r"target.eval_label_budget: 20 eval images "
     r"asked for, but .* has about 5 in the eval split"),
], ids=["imbalanced", "class-missing", "budget-too-large", "eval-budget-too-large"])
def test_validate_config_reports_label_problems_before_running(tmp_path, train, changes,
                                                               message):
    data = write_dataset(tmp_path / "data", train, {0: 10, 1: 10})
    with open("configs/fashion_mnist_ab.yaml", encoding="utf-8") as f:
        config = copy.deepcopy(yaml.safe_load(f))
    config.pop("source")
    config["model"] = {"architecture": "mobilenet_v2", "weights": "imagenet"}
    config["image"]["channels"] = 3
    config["target"] = {"format": "idx", "path": str(data), "class_names": NAMES, **changes}
    with pytest.raises(ConfigError, match=message):
        check_datasets(parse_config(config))
