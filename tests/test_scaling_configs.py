"""The runner fragments in configs/runners/ drop into a config as they say, and Beam knows every flag."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config import parse_config

RUNNERS = sorted(Path("configs/runners").glob("*.yaml"))


def load(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def test_there_is_a_fragment_per_cluster_runner():
    assert [path.stem for path in RUNNERS] == ["dataflow", "flink", "spark"]


@pytest.mark.parametrize("fragment", RUNNERS, ids=lambda path: path.stem)
def test_fragment_is_valid_at_top_level_and_under_kubeflow(fragment):
    args = load(fragment)["beam_pipeline_args"]
    assert list(load(fragment)) == ["beam_pipeline_args"]
    local = copy.deepcopy(load("configs/fashion_mnist_ab.yaml"))
    local["beam_pipeline_args"] = args
    assert parse_config(local).beam_pipeline_args == args
    compiled = copy.deepcopy(load("configs/kubeflow_example.yaml"))
    compiled["kubeflow"]["beam_pipeline_args"] = args
    assert parse_config(compiled).kubeflow.beam_pipeline_args == args


@pytest.mark.parametrize("fragment", RUNNERS, ids=lambda path: path.stem)
def test_beam_knows_every_flag(fragment):
    options = PipelineOptions(load(fragment)["beam_pipeline_args"])
    known = options.get_all_options()
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(known)
    assert unknown == set()
    assert known["runner"] in ("DataflowRunner", "PortableRunner")
