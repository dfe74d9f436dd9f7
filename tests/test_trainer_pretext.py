"""Pretraining without labels, through the real TFX Trainer executor: the autoencoder and
rotation tasks learn, export an encoder, and their base arrives in the transfer Trainer."""

import csv
import functools
import os

import numpy as np
import pydantic
import pytest
import tensorflow as tf
import tf_keras as keras
from tfx.types import standard_artifacts

from tests.trainer_fixtures import run_trainer, scratch_root, task_a, task_b, trainer_config
from trainer.base_model_file import load_keras_model
from trainer.options import TrainerConfig
from trainer.pretext import decoder, pretext_model, rotate_batch


def history(out: str, phase: str) -> list[dict[str, float]]:
    with open(os.path.join(out, "model_run", phase, "history.csv"), encoding="utf-8") as f:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(f)]


def pretext_config(method: str, epochs: int) -> TrainerConfig:
    config = trainer_config("pretrain", task_a(), batch_size=32,
                            pretrain={"epochs": epochs, "learning_rate": 2e-3})
    return TrainerConfig.model_validate({**config.model_dump(), "pretraining": method,
                                         "label_names": []})


@functools.cache
def pretrained(method: str) -> str:
    """The pretrain Trainer's output dir after `method` on task A's images (labels unread)."""
    out = os.path.join(scratch_root(), f"pretext_{method}")
    run_trainer(task_a(), pretext_config(method, 6), out)
    return out


def test_rotate_batch_turns_each_image_four_times_and_labels_the_turn():
    images = tf.constant(np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 1))
    turned, turns = rotate_batch(images, tf.constant([7, 7], tf.int64))
    assert turns.dtype == tf.int64
    np.testing.assert_array_equal(turns, [0, 0, 1, 1, 2, 2, 3, 3])
    for k in range(4):
        for i in range(2):
            np.testing.assert_array_equal(turned[2 * k + i, ..., 0],
                                          np.rot90(images[i, ..., 0].numpy(), k))


@pytest.mark.parametrize("shape", [(28, 28, 1), (30, 22, 3)])
def test_the_decoder_rebuilds_the_image_shape(shape):
    assert decoder((128,), shape).output_shape == (None, *shape)


def test_rotation_needs_square_images():
    base = keras.Sequential([keras.layers.Flatten(input_shape=(30, 22, 1))], name="base")
    with pytest.raises(ValueError, match="needs square images; they are 30x22"):
        pretext_model("rotation", base, (30, 22, 1), 0.0)


def test_autoencoder_pretraining_reduces_its_reconstruction_loss_and_exports_an_encoder():
    out = pretrained("autoencoder")
    rows = history(out, "pretrain")
    assert set(rows[0]) == {"epoch", "loss", "val_loss", "lr"}
    assert rows[-1]["val_loss"] < 0.8 * rows[0]["val_loss"]
    # Better than the eval split's mean image, which needs no features at all.
    pixels = task_a().eval_pixels / 255.0
    assert rows[-1]["val_loss"] < np.mean((pixels - pixels.mean(axis=0)) ** 2)
    keras_model = load_keras_model(os.path.join(out, "model", "keras", "model.h5"))
    assert [layer.name for layer in keras_model.layers[1:]] == ["base", "decoder"]
    examples = list(tf.data.TFRecordDataset(task_a().raw_eval_path, "GZIP").as_numpy_iterator())
    serving = tf.saved_model.load(os.path.join(out, "model", "Format-Serving"))
    embedding = serving.signatures["serving_default"](examples=tf.constant(examples))
    assert embedding["embedding"].shape == (len(examples), 128)
    expected = keras_model.get_layer("base")(task_a().eval_pixels[..., None] / 255.0)
    np.testing.assert_allclose(embedding["embedding"], expected, atol=1e-4)


def test_rotation_pretraining_learns_to_tell_the_turn():
    rows = history(pretrained("rotation"), "pretrain")
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert rows[-1]["val_accuracy"] > 0.6  # chance: 0.25


@pytest.mark.parametrize("method", ["autoencoder", "rotation"])
def test_the_pretext_base_arrives_in_the_transfer_trainer(method):
    source = load_keras_model(os.path.join(pretrained(method), "model", "keras", "model.h5"))
    pretrained_base = {w.name: w.numpy() for w in source.get_layer("base").weights}
    out = os.path.join(scratch_root(), f"transfer_from_{method}")
    base_model = standard_artifacts.Model()
    base_model.uri = os.path.join(pretrained(method), "model")
    run_trainer(task_b(), trainer_config("transfer", task_b()), out, base_model=base_model)
    exported = tf.saved_model.load(os.path.join(out, "model", "Format-Serving"))
    transferred = {v.name: v.numpy() for v in exported.variables if v.name in pretrained_base}
    assert transferred.keys() == pretrained_base.keys()
    # unfreeze=1: conv3 fine-tunes; blocks 1 and 2 and every BatchNorm keep the pretext's.
    changed = {name for name in pretrained_base
               if not np.array_equal(transferred[name], pretrained_base[name])}
    assert changed == {"conv3/kernel:0"}


def test_a_label_free_pretraining_takes_no_labels_and_other_roles_need_them():
    with pytest.raises(pydantic.ValidationError, match="uses no labels"):
        TrainerConfig.model_validate({**pretext_config("autoencoder", 1).model_dump(),
                                      "label_names": ["a", "b"]})
    with pytest.raises(pydantic.ValidationError, match="only the pretrain Trainer pretrains"):
        TrainerConfig.model_validate({**trainer_config("transfer", task_b()).model_dump(),
                                      "pretraining": "rotation"})
    with pytest.raises(pydantic.ValidationError, match="a classifier needs at least 2"):
        TrainerConfig.model_validate({**trainer_config("scratch", task_b()).model_dump(),
                                      "label_names": []})
