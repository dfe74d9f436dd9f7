"""The plain Keras model the pretrain Trainer leaves for the transfer Trainer.

Layout of a Model artifact written by `run_fn`:

    <model artifact uri>/Format-Serving/   the serving SavedModel (fn_args.serving_model_dir)
    <model artifact uri>/keras/model.h5    pretrain role only: the whole Keras classifier

The transfer Trainer receives `<uri>/Format-Serving` as fn_args.base_model and reads the
H5 file beside it, then takes its 'base' sub-model. The SavedModel is not used for this:
its serving signatures wrap the Transform graph, and Keras rebuilds layers best from H5.
"""

from __future__ import annotations

import os
import tempfile

import tensorflow as tf
import tf_keras as keras

from trainer.architectures import RandomQuarterTurn

KERAS_MODEL_PATH = os.path.join("keras", "model.h5")
"""Relative to the Model artifact's URI."""


def keras_model_path(serving_model_dir: str) -> str:
    """Where the Keras model sits for a serving dir (fn_args.serving_model_dir or base_model)."""
    artifact_uri = os.path.dirname(os.path.normpath(serving_model_dir))
    return os.path.join(artifact_uri, KERAS_MODEL_PATH)


def save_keras_model(model: keras.Model, path: str) -> None:
    """Save `model` as H5 at `path`, which may be remote (gs://...): h5py writes local files."""
    with tempfile.TemporaryDirectory() as scratch:
        local = os.path.join(scratch, "model.h5")
        model.save(local, save_format="h5", include_optimizer=False)
        tf.io.gfile.makedirs(os.path.dirname(path))
        tf.io.gfile.copy(local, path, overwrite=True)


def load_keras_model(path: str) -> keras.Model:
    """Load an H5 model saved by `save_keras_model`, from a local or remote path, uncompiled."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: no Keras model; was base_model written by a "
                                "pretrain Trainer of this project?")
    with tempfile.TemporaryDirectory() as scratch:
        local = os.path.join(scratch, "model.h5")
        tf.io.gfile.copy(path, local)
        # The project's own layers, by the name legacy H5 configs give them.
        return keras.models.load_model(local, compile=False,
                                       custom_objects={"RandomQuarterTurn": RandomQuarterTurn})
