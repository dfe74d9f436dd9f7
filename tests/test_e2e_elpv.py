"""Real transfer, small: the shipped ImageNet → ELPV config through the whole pipeline.

The ImageNet MobileNetV1 weights that setup converted (data/weights/) and the real ELPV solar
cells (data/elpv/) at test size: 64 px, 140 labels, a few epochs. The test split is the
published benchmark's 656 cells whatever the budget, so the accuracies are comparable to
docs/benchmarks.md's; always answering "functional" scores 68.8 % there.
"""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

CONFIG = "configs/elpv_imagenet.yaml"
MAJORITY = 451 / 656  # "functional" for every test cell


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("elpv")
    overrides = [
        f"pipeline_root={root / 'pipeline'}", f"serving_dir={root / 'serving'}",
        "target.label_budget=160", "target.eval_label_budget=40",
        # The frozen phase, on cached features, does the learning; fine-tuning (slow, and
        # tested in tests/test_trainer_phases.py) is skipped, the baseline gets one epoch.
        "training.frozen.epochs=40", "training.frozen.learning_rate=0.01",
        "training.fine_tune.epochs=0",
        "training.scratch.epochs=1", "training.scratch.early_stopping_start=0",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--config", CONFIG,
         *[arg for override in overrides for arg in ("--set", override)]],
        capture_output=True, text=True, timeout=1500, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = sorted((root / "pipeline" / "reports").iterdir())
    return json.loads((reports[-1] / "report.json").read_text())


def test_imagenet_features_beat_scratch_on_the_benchmark_split(report):
    transfer, scratch = report["metrics"]["transfer"], report["metrics"]["scratch"]
    assert transfer["example_count"] == scratch["example_count"] == 656
    assert transfer["accuracy"] > max(scratch["accuracy"], MAJORITY + 0.03), (transfer, scratch)
    assert report["blessed"] and report["pushed"]


def test_the_report_shows_the_cells_it_got_wrong(report):
    wrong = report["examples"]["misclassified"]
    assert wrong["judged"] == 656
    assert wrong["count"] == round((1 - report["metrics"]["transfer"]["accuracy"]) * 656)
    assert 0 < len(wrong["shown"]) <= wrong["count"]
    assert {cell["true"] for cell in wrong["shown"]} <= {"functional", "defective"}
