"""The whole pipeline, for real: LocalDagRunner on Beam over a small Fashion-MNIST subset.

One run trains and pushes; a second run with an impossible margin re-uses every cached
component but the Evaluators (the push changed what is served) and must neither bless nor
push; a third with another fine-tuning learning rate retrains the transfer model alone.
`predict` then reads the pushed model through its raw-bytes signature. The first run's
report.html is opened in headless Chromium as a reader would.

Its own runs: what they share and rebuild across them is the test. The first is the suite's one
run of the user's main job at test size (docs/development.md); every test here reads it.
"""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from tests import browser
from tests.fashion_mnist import read_idx, write_subset

pytestmark = pytest.mark.e2e

CONFIG = "configs/fashion_mnist_ab.yaml"


def _tfx_transfer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, timeout=1500, check=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = write_subset(str(root / "fashion-mnist"), n_train=2400, n_test=600)
    overrides = [
        f"source.path={data}", f"target.path={data}",
        f"pipeline_root={root / 'pipeline'}", f"serving_dir={root / 'serving'}",
        "target.label_budget=40", "target.eval_label_budget=20",
        "training.pretrain.epochs=4", "training.frozen.epochs=3",
        "training.fine_tune.epochs=6", "training.fine_tune.early_stopping_patience=3",
        "evaluation.min_accuracy=0.5",
        # Beam's worker processes cost more than they save on 3000 images; the
        # multi-processing default is covered by tests/test_scaling_*.
        "beam_pipeline_args=[--direct_running_mode=in_memory]",
    ]
    return root, [arg for o in overrides for arg in ("--set", o)]


def _latest_report_dir(root):
    return max((root / "pipeline" / "reports").iterdir(), key=lambda p: p.stat().st_mtime)


def _report(root) -> dict:
    return json.loads((_latest_report_dir(root) / "report.json").read_text())


def _summary(stdout: str) -> list[str]:
    """The terminal summary: what the run prints before the report's path."""
    return stdout.split("\nreport: ")[0].splitlines()


def test_run_trains_evaluates_and_pushes(run_dir):
    root, sets = run_dir
    result = _tfx_transfer("run", "--config", CONFIG, *sets)
    assert result.returncode == 0, result.stderr[-3000:]
    report = _report(root)

    transfer, baseline = report["metrics"]["transfer"], report["metrics"]["scratch"]
    assert transfer["example_count"] == baseline["example_count"] > 0
    assert report["blessed"] == (transfer["accuracy"] > baseline["accuracy"]
                                 and transfer["accuracy"] >= 0.5)
    assert report["blessed"], f"transfer {transfer['accuracy']} vs scratch {baseline['accuracy']}"
    assert report["pushed"] and os.path.isfile(
        os.path.join(report["pushed_model_dir"], "saved_model.pb"))
    assert os.path.dirname(report["pushed_model_dir"]) == str(root / "serving")
    assert set(report["component_seconds"]) >= {
        "source_example_gen", "target_transform", "pretrain_trainer", "transfer_trainer",
        "scratch_trainer", "evaluator", "pusher"}
    assert {"Sandal", "Shirt"} == set(transfer["per_class"])
    assert report["histories"]["transfer_trainer"]["frozen"]
    assert "accuracy" in result.stdout and "pushed to" in result.stdout

    labels = report["labels"]
    pretrain = labels["pretrain"]
    assert pretrain["train"] > 0 and pretrain["eval"] > 0
    assert labels["transfer"] == {"train": 40, "eval": 20,
                                  "source": pretrain["train"] + pretrain["eval"]}
    assert labels["scratch"] == {"train": 40, "eval": 20}
    assert labels["test"] == transfer["example_count"]
    assert f"judged on {labels['test']} test images" in result.stdout

    # The decision names both Evaluators; nothing was served before, so no served figures.
    assert all(e["blessed"] for e in report["evaluators"].values())
    assert "served" not in report["metrics"] and report["served_before"] is None
    assert "served before: nothing" in result.stdout
    # Per-class figures, the confusion matrix and the accuracy tell one story.
    confusion = report["confusion"]["transfer"]
    right = sum(confusion[i][i] for i in range(len(confusion)))
    assert sum(map(sum, confusion)) == labels["test"]
    assert right / labels["test"] == pytest.approx(transfer["accuracy"], abs=1e-6)
    assert sum(row["recall"] * row["support"] for row in transfer["per_class"].values()) == \
        pytest.approx(right)
    # The gallery holds exactly the images the Evaluator counted as wrong.
    mistakes = report["examples"]["misclassified"]
    assert mistakes["count"] == labels["test"] - right and mistakes["judged"] == labels["test"]
    assert report["config"]["target"]["classes"] == ["Sandal", "Shirt"]
    assert report["config"]["target"]["label_budget"] == 40
    assert [item["component"] for item in report["timeline"]][0] == "source_example_gen"
    assert os.path.isfile(report["logs"]["run_log"])
    assert max(map(len, _summary(result.stdout))) <= 80, result.stdout
    assert "vs scratch: pass: accuracy gain over scratch" in result.stdout


def test_the_report_renders_in_a_browser(run_dir):
    root, _ = run_dir
    if not browser.chromium():
        pytest.fail("headless Chromium is missing: scripts/setup installs Debian's chromium")
    first = min((root / "pipeline" / "reports").iterdir(), key=lambda p: p.stat().st_mtime)
    report = json.loads((first / "report.json").read_text())
    page = browser.render(str(first / "report.html"), str(first / "report.png"))
    assert not page.console_errors and not page.failed_requests, page
    shown = len(report["examples"]["misclassified"]["shown"])
    # Curves of three Trainers, two confusion matrices, the timeline, 6 images a class.
    assert len(page.images) == 3 + 2 + 1 + 2 * 6 + shown
    assert all(image["naturalWidth"] > 0 for image in page.images), page.images
    assert f"Pushed to {report['pushed_model_dir']}" in page.text
    per_class = next(t for t in page.tables if "precision" in t)
    assert "Sandal" in per_class and "Shirt" in per_class
    assert (first / "report.png").stat().st_size > 0


def test_rerun_with_impossible_margin_is_cached_and_not_pushed(run_dir):
    root, sets = run_dir
    versions = sorted(os.listdir(root / "serving"))
    # -v: TFX's Beam executors re-parse the command line as absl flags (-v is absl's too).
    result = _tfx_transfer("-v", "run", "--config", CONFIG, *sets,
                           "--set", "evaluation.margin=0.6")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Component evaluator is finished" in result.stderr  # TFX's log, shown with -v
    report = _report(root)
    states = report["component_states"]
    # The first run's push changed what is served, so the served-model comparison re-runs.
    rerun = ("served_model", "served_evaluator", "evaluator", "pusher")
    assert all(state == "cached" for node, state in states.items() if node not in rerun), \
        states
    assert all(states[node] == "complete" for node in rerun), states
    assert not report["blessed"] and not report["pushed"]
    assert report["blessing_reasons"][0].startswith("vs scratch: FAIL: accuracy gain")
    # Against what the first run pushed, which is this same (cached) transfer model: a tie.
    assert report["evaluators"]["served_evaluator"]["blessed"]
    assert report["metrics"]["served"]["accuracy"] == report["metrics"]["transfer"]["accuracy"]
    assert report["served_before"] == max(v for v in versions if v.isdigit())
    assert "this same transfer model" in result.stdout
    assert sorted(os.listdir(root / "serving")) == versions


def test_a_fine_tune_change_retrains_the_transfer_only(run_dir):
    root, sets = run_dir
    result = _tfx_transfer("run", "--config", CONFIG, *sets,
                           "--set", "training.fine_tune.learning_rate=5.0e-5")
    assert result.returncode == 0, result.stderr[-3000:]
    states = _report(root)["component_states"]
    assert states["transfer_trainer"] == "complete"
    # Pretraining (about 70 % of a run) and the baseline read nothing of fine_tune.
    assert states["pretrain_trainer"] == states["scratch_trainer"] == "cached", states
    assert all(state == "cached" for node, state in states.items()
               if node.startswith(("source_", "target_"))), states


def test_predict_reads_the_pushed_model(run_dir, tmp_path):
    root, _ = run_dir
    images = read_idx(str(root / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(str(root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"))
    sandal = tmp_path / "sandal.png"
    Image.fromarray(images[list(labels).index(5)]).save(sandal)
    result = _tfx_transfer("predict", "--model", str(root / "serving"), str(sandal))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{sandal}: Sandal" in result.stdout
    assert "Shirt=" in result.stdout

    # A file that isn't an image is named, the others are still classified, the exit is 1.
    broken = tmp_path / "notes.png"
    broken.write_text("not pixels")
    result = _tfx_transfer("predict", "--model", str(root / "serving"), str(broken), str(sandal))
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"{broken}: not an image (Unknown image file format" in result.stderr
    assert f"{sandal}: Sandal" in result.stdout
