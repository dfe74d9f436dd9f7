"""The whole pipeline pretraining without labels, for real: `tfx-transfer run` of
configs/fashion_mnist_unlabelled.yaml on small Fashion-MNIST data, its source an image
folder without class folders (one broken file in it, skipped and reported). Its own run: the
only one with an unlabelled source; all its tests read it."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from PIL import Image

from tests.fashion_mnist import FASHION_MNIST_DIR, read_idx, write_subset

pytestmark = pytest.mark.e2e

CONFIG = "configs/fashion_mnist_unlabelled.yaml"
N_FOLDER_IMAGES = 400


def write_unlabelled_folder(folder) -> None:
    """Fashion-MNIST test images (none of them in the target's data) as loose PNG files,
    and one file that is not an image."""
    images = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))
    folder.mkdir()
    for index in range(5000, 5000 + N_FOLDER_IMAGES):
        Image.fromarray(images[index]).save(folder / f"{index}.png")
    (folder / "notes.png").write_text("not an image\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e_unlabelled")
    write_unlabelled_folder(root / "unlabelled")
    target = write_subset(str(root / "fashion-mnist"), n_train=1500, n_test=400)
    overrides = [
        "pretraining.method=autoencoder", "pretraining.data=source",
        "source.format=image_folder",
        f"source.path={root / 'unlabelled'}", "source.labelled=false",
        "source.on_bad_image=skip", f"target.path={target}",
        f"pipeline_root={root / 'pipeline'}", f"serving_dir={root / 'serving'}",
        "target.label_budget=40", "target.eval_label_budget=20",
        "training.pretrain.epochs=3", "training.frozen.epochs=2", "training.fine_tune.epochs=2",
        "beam_pipeline_args=[--direct_running_mode=in_memory]"]
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--config", CONFIG,
         *[arg for item in overrides for arg in ("--set", item)]],
        capture_output=True, text=True, timeout=1500, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    [report_dir] = (root / "pipeline" / "reports").iterdir()
    return root, json.loads((report_dir / "report.json").read_text()), report_dir, result.stdout


def test_it_pretrains_an_autoencoder_on_the_folder_and_counts_no_source_labels(run):
    root, report, _, stdout = run
    assert report["config"]["pretraining"] == "autoencoder"
    assert report["config"]["source"]["labelled"] is False
    labels = report["labels"]
    # Every loose image but the broken one, less the folder's held-out test share.
    assert 0.8 * N_FOLDER_IMAGES < labels["pretrain"]["images"] < N_FOLDER_IMAGES
    assert (labels["pretrain"]["train"], labels["pretrain"]["eval"]) == (0, 0)
    assert labels["transfer"] == {"train": 40, "eval": 20, "source": 0}
    assert report["skipped"]["source"]["count"] == 1
    assert report["skipped"]["source"]["first"][0]["path"].endswith("notes.png")
    history = report["histories"]["pretrain_trainer"]["pretrain"]
    assert len(history) == 3 and "accuracy" not in history[0]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert "pretrain_trainer_curves" in report["plots"]
    assert "transfer" in stdout and "+source" in stdout


def test_the_source_examples_carry_no_labels(run):
    root = run[0]
    [examples] = (root / "pipeline" / "source_example_gen" / "examples").iterdir()
    files = tf.io.gfile.glob(str(examples / "Split-*" / "*"))
    assert {os.path.basename(os.path.dirname(f)) for f in files} == {
        "Split-train", "Split-eval", "Split-test"}
    labels = {tf.train.Example.FromString(record).features.feature["label"].int64_list.value[0]
              for record in tf.data.TFRecordDataset(files, "GZIP").as_numpy_iterator()}
    assert labels == {-1}


def test_the_transfer_model_reuses_the_encoder_and_is_judged_against_scratch(run):
    root, report, report_dir, _ = run
    [pretrain] = (root / "pipeline" / "pretrain_trainer" / "model").iterdir()
    encoder = tf.saved_model.load(str(pretrain / "Format-Serving"))
    assert set(encoder.signatures["serving_default"].structured_outputs) == {"embedding"}
    metrics = report["metrics"]
    assert metrics["transfer"]["example_count"] == metrics["scratch"]["example_count"] == (
        report["labels"]["test"])
    gain = metrics["transfer"]["accuracy"] - metrics["scratch"]["accuracy"]
    [check] = [check for check in report["evaluators"]["evaluator"]["checks"]
               if check["kind"] == "change"]
    assert check["value"] == pytest.approx(gain, abs=1e-6)
    assert report["evaluators"]["evaluator"]["blessed"] == (
        gain > 0 and metrics["transfer"]["accuracy"] >= 0.5)
    assert "none of their labels" in (report_dir / "report.html").read_text()
