"""run_fn end to end through the real TFX Trainer executor, for each of the three roles."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer_fixtures import (pretrained_cnn, run_trainer, scratch_root, task_a, task_b,
                                    trainer_config)
from trainer.base_model_file import load_keras_model
from transform.features import LABEL_VOCABULARY_FILE

HISTORY_COLUMNS = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}


def history(model_run_uri: str, phase: str) -> list[dict]:
    with open(os.path.join(model_run_uri, phase, "history.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def serve_eval_examples(serving_dir: str, raw_eval_path: str) -> dict[str, np.ndarray]:
    examples = list(tf.data.TFRecordDataset(raw_eval_path, "GZIP").as_numpy_iterator())
    signature = tf.saved_model.load(serving_dir).signatures["serving_default"]
    return {key: value.numpy() for key, value in signature(examples=tf.constant(examples)).items()}


@pytest.fixture(scope="module")
def transferred() -> str:
    """The transfer Trainer's output directory, trained from the pretrain Trainer's model."""
    out = os.path.join(scratch_root(), "transfer_e2e")
    run_trainer(task_b(), trainer_config("transfer", task_b()), out, base_model=pretrained_cnn())
    return out


def test_pretrain_writes_serving_model_keras_copy_and_history():
    model = pretrained_cnn()
    assert tf.saved_model.contains_saved_model(os.path.join(model.uri, "Format-Serving"))
    keras_model = load_keras_model(os.path.join(model.uri, "keras", "model.h5"))
    assert keras_model.get_layer("base").name == "base"
    rows = history(os.path.join(scratch_root(), "pretrain", "model_run"), "pretrain")
    assert len(rows) == 8 and set(rows[0]) == HISTORY_COLUMNS
    assert os.listdir(os.path.join(scratch_root(), "pretrain", "model_run", "pretrain", "train"))


def test_pretrain_serves_task_a_examples():
    outputs = serve_eval_examples(os.path.join(pretrained_cnn().uri, "Format-Serving"),
                                  task_a().raw_eval_path)
    n = len(task_a().eval_labels)
    assert outputs["probabilities"].shape == (n, 8)
    assert outputs["class_id"].dtype == np.int64
    # Eight epochs on 320 images is enough to beat chance (1/8) by far.
    assert np.mean(outputs["class_id"] == task_a().eval_labels) > 0.5


def test_transfer_starts_from_the_pretrain_output(transferred):
    keras_model = load_keras_model(os.path.join(pretrained_cnn().uri, "keras", "model.h5"))
    pretrained = {w.name: w.numpy() for w in keras_model.get_layer("base").weights}
    exported = tf.saved_model.load(os.path.join(transferred, "model", "Format-Serving"))
    transferred_base = {v.name: v.numpy() for v in exported.variables if v.name in pretrained}
    assert transferred_base.keys() == pretrained.keys()
    # unfreeze=1 thaws conv3; its BatchNorm and blocks 1 and 2 never train.
    unchanged = {name for name in pretrained
                 if np.array_equal(transferred_base[name], pretrained[name])}
    trained = set(pretrained) - unchanged
    assert trained == {"conv3/kernel:0"}


def test_transfer_logs_both_phases_and_serves_class_names(transferred):
    for phase in ("frozen", "fine_tune"):
        rows = history(os.path.join(transferred, "model_run"), phase)
        assert rows and set(rows[0]) == HISTORY_COLUMNS
    assert not os.path.exists(os.path.join(transferred, "model", "keras"))
    serving_dir = os.path.join(transferred, "model", "Format-Serving")
    with open(os.path.join(serving_dir, "assets.extra", LABEL_VOCABULARY_FILE)) as f:
        assert f.read().splitlines() == ["Sandal", "Shirt"]
    outputs = serve_eval_examples(serving_dir, task_b().raw_eval_path)
    names = np.array([b"Sandal", b"Shirt"])
    np.testing.assert_array_equal(outputs["class_name"], names[outputs["class_id"]])
    assert np.mean(outputs["class_id"] == task_b().eval_labels) > 0.8


def test_scratch_trains_the_baseline_in_one_phase():
    out = os.path.join(scratch_root(), "scratch_e2e")
    config = trainer_config("scratch", task_b(),
                            scratch={"epochs": 3, "learning_rate": 3e-3,
                                     "early_stopping_patience": 1})
    run_trainer(task_b(), config, out)
    assert sorted(os.listdir(os.path.join(out, "model_run"))) == ["scratch"]
    rows = history(os.path.join(out, "model_run"), "scratch")
    assert 2 <= len(rows) <= 3  # patience 1 may stop it after two epochs
    outputs = serve_eval_examples(os.path.join(out, "model", "Format-Serving"),
                                  task_b().raw_eval_path)
    assert outputs["probabilities"].shape == (len(task_b().eval_labels), 2)
