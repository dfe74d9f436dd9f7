"""What several benchmarks share: Fashion-MNIST subset options and configs, result files."""

from __future__ import annotations

import argparse
import json
import os

from pipeline.config import PipelineConfig
from tests import scaling_stages as stages
from tests.fashion_mnist import write_subset


def add_subset_args(parser: argparse.ArgumentParser, train: int) -> None:
    """--train / --test image counts of the subset and --repeats."""
    parser.add_argument("--train", type=int, default=train, help="train-* images (train + eval)")
    parser.add_argument("--test", type=int, default=1000, help="t10k-* images (test split)")
    parser.add_argument("--repeats", type=int, default=3)


def all_classes_config(root: str, train: int, test: int) -> PipelineConfig:
    """A subset written under `root` and a config keeping every class with no label budget:
    the ExampleGen writes all images, the Transform all but the test split."""
    data = write_subset(os.path.join(root, "data"), train, test)
    return stages.target_config(data, root, stages.FASHION_NAMES, label_budget=None)


def save_json(path: str, results: dict) -> None:
    """Write `results` to `path`, creating its directory, and say so."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)
    print(f"wrote {path}")
