"""Scheduled retraining as a user lives it, through the CLI on real Fashion-MNIST spans:

1. span 1 of the target: the pipeline trains, blesses and pushes v1;
2. a tick with nothing new: nothing is re-ingested or retrained, nothing is pushed, and the
   report says the model is already served;
3. span 2 arrives: the target is re-ingested and retrained, pretraining stays cached, and v2
   is pushed because it is no worse than v1 on span 2's test split;
4. the serving dir is rolled back by hand: the next run's comparison is with v1, what is
   served, and v2 is not pushed back.

The Kubeflow counterpart of 1-3 is tests/test_kubeflow_backend.py. Its own runs: new spans
and the rollback change the data and the serving dir between them.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.fashion_mnist import write_image_span, write_subset

pytestmark = pytest.mark.e2e

CONFIG = "configs/fashion_mnist_ab.yaml"
TARGET = {5: "Sandal", 6: "Shirt"}
INGEST_AND_TRAIN = ("source_example_gen", "target_example_gen", "source_transform",
                    "target_transform", "pretrain_trainer", "transfer_trainer",
                    "scratch_trainer")


def _run(root, sets) -> dict:
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", CONFIG,
                             *sets], capture_output=True, text=True, timeout=1500, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = root / "pipeline" / "reports"
    latest = max(reports.iterdir(), key=lambda p: p.stat().st_mtime)
    report = json.loads((latest / "report.json").read_text())
    report["stdout"] = result.stdout
    return report


def _versions(root) -> list[str]:
    return sorted(os.listdir(root / "serving"))


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    root = tmp_path_factory.mktemp("retraining")
    source = write_subset(str(root / "source"), n_train=1200, n_test=300)
    write_image_span(root / "target", 1, TARGET, start=0, per_class=150)
    overrides = [
        f"source.path={source}", f"target.path={root / 'target'}",
        "target.format=image_folder", "target.class_names=null", "target.label_budget=null",
        f"pipeline_root={root / 'pipeline'}", f"serving_dir={root / 'serving'}",
        "training.pretrain.epochs=2", "training.frozen.epochs=1", "training.fine_tune.epochs=2",
        "evaluation.min_accuracy=0", "beam_pipeline_args=[--direct_running_mode=in_memory]",
    ]
    return root, [arg for o in overrides for arg in ("--set", o)]


@pytest.fixture(scope="module")
def first(spans):
    root, sets = spans
    return _run(root, sets)


def test_span_one_is_trained_and_pushed(spans, first):
    root, _ = spans
    assert first["pushed"], first["blessing_reasons"]
    assert _versions(root) == [os.path.basename(first["pushed_model_dir"])]


def test_a_tick_without_new_data_reingests_retrains_and_pushes_nothing(spans, first):
    root, sets = spans
    report = _run(root, sets)
    states = report["component_states"]
    assert all(states[node] == "cached" for node in INGEST_AND_TRAIN), states
    assert not report["pushed"]
    assert report["push_reasons"][0].startswith("already served")
    assert "already served" in report["stdout"]
    assert len(_versions(root)) == 1


def test_a_new_span_retrains_the_target_and_pushes_if_not_worse(spans, first):
    root, sets = spans
    write_image_span(root / "target", 2, TARGET, start=150, per_class=200)
    report = _run(root, sets)
    states = report["component_states"]
    assert {node for node in INGEST_AND_TRAIN if states[node] == "cached"} == {
        "source_example_gen", "source_transform", "pretrain_trainer"}, states
    assert states["evaluator"] == states["served_evaluator"] == "complete"
    v1 = os.path.basename(first["pushed_model_dir"])
    assert report["served_version"] == v1  # judged against what was served
    assert report["pushed"], report["blessing_reasons"]
    assert _versions(root) == sorted([v1, os.path.basename(report["pushed_model_dir"])])


def test_after_a_rollback_the_run_compares_with_what_is_served(spans, first):
    root, sets = spans
    v1, v2 = _versions(root)
    shutil.rmtree(root / "serving" / v2)  # rolled back by hand
    report = _run(root, sets)
    states = report["component_states"]
    assert all(states[node] == "cached" for node in INGEST_AND_TRAIN), states
    # The candidate was compared with v1 once already (before v2 went out), so that
    # comparison and the Pusher's decision are reused: judged against v1, nothing re-pushed.
    assert report["served_version"] == v1
    assert not report["pushed"] and report["push_reasons"][0].startswith("cached")
    assert _versions(root) == [v1]
