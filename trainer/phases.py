"""The training phases. Transfer learning is two of them:

1. `frozen_phase`: the reused base is frozen and only the new head learns (on cached base
   outputs when possible), so the large gradients of a random head cannot wreck the
   pretrained features.
2. `fine_tune_phase`: the top `unfreeze` reused layers thaw and train with the head at a
   low learning rate, stopping early on the eval split and keeping the best weights.

`reuse_layers` and `unfreeze` count the base's layers with weights, a BatchNorm layer going
with the layer it normalises (architectures.reusable_layers). A reused BatchNorm layer stays
frozen in both phases, so it normalises with the pretrained statistics and never updates
them; re-initialised layers above the reused ones train as fresh layers, statistics included.
Pretraining and the from-scratch baseline are one ordinary `fit` each, of every layer.
Every phase logs to `<model_run_dir>/<phase>/`: TensorBoard events and `history.csv`.
"""

from __future__ import annotations

import os

import tensorflow as tf
import tf_keras as keras
from absl import logging

from trainer import bottleneck_cache
from trainer.architectures import base_layers, reusable_layers
from trainer.image_inputs import Splits
from trainer.options import FineTuneConfig, PhaseConfig, TrainingConfig

_OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop, "nadam": keras.optimizers.Nadam}
_REDUCE_LR_FACTOR = 0.5


class LogLearningRate(keras.callbacks.Callback):
    """Adds the epoch's learning rate to the logs, so history.csv always has an `lr` column."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))


CLASSIFIER_LOSS = "sparse_categorical_crossentropy"


def compile_for(model: keras.Model, optimizer: str, learning_rate: float,
                loss: str = CLASSIFIER_LOSS) -> None:
    """Compile with a fresh optimizer; a classifier (sparse cross-entropy) also reports a
    metric named 'accuracy'."""
    model.compile(optimizer=_OPTIMIZERS[optimizer](learning_rate=learning_rate), loss=loss,
                  metrics=["accuracy"] if loss == CLASSIFIER_LOSS else [])


def train_callbacks(name: str, phase: PhaseConfig, training: TrainingConfig,
                    run_dir: str) -> list[keras.callbacks.Callback]:
    """lr logging, ReduceLROnPlateau, EarlyStopping (restoring the best weights), TensorBoard
    and a CSV history, all watching the eval split; the CSV comes last to see every log."""
    log_dir = os.path.join(run_dir, name)
    tf.io.gfile.makedirs(log_dir)
    callbacks: list[keras.callbacks.Callback] = [LogLearningRate()]
    if training.reduce_lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=_REDUCE_LR_FACTOR, patience=training.reduce_lr_patience))
    if phase.early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=phase.early_stopping_patience,
            restore_best_weights=True, start_from_epoch=phase.early_stopping_start))
    callbacks += [keras.callbacks.TensorBoard(log_dir=log_dir),
                  keras.callbacks.CSVLogger(os.path.join(log_dir, "history.csv"))]
    return callbacks


def fit(model: keras.Model, splits: Splits, name: str, phase: PhaseConfig,
        training: TrainingConfig, run_dir: str, loss: str = CLASSIFIER_LOSS) -> None:
    """Compile `model` for `phase` and train it on `splits`, validating on the eval split."""
    if phase.epochs == 0:
        logging.info("Phase %s: 0 epochs, skipped", name)
        return
    compile_for(model, training.optimizer, phase.learning_rate, loss)
    trainable = sum(int(tf.size(weight)) for weight in model.trainable_weights)
    logging.info("Phase %s: %d epochs at lr %g, %d trainable parameters", name, phase.epochs,
                 phase.learning_rate, trainable)
    model.fit(splits.train, validation_data=splits.eval, epochs=phase.epochs,
              callbacks=train_callbacks(name, phase, training, run_dir), verbose=2)


def freeze(base: keras.Model, n_reused: int) -> None:
    """Freeze the bottom `n_reused` reusable layers; the re-initialised ones above train,
    their BatchNorm statistics included."""
    base.trainable = True  # Sets every layer; the loop then has the last word.
    for unit in reusable_layers(base)[:n_reused]:
        for layer in unit:
            layer.trainable = False


def unfreeze_top(base: keras.Model, n_reused: int, unfreeze: int | str) -> None:
    """Thaw the top `unfreeze` ('all' or a number) of the reused layers. Their BatchNorm
    layers stay frozen: a few small target batches must not overwrite statistics learnt on
    the source (Keras' fine-tuning guide keeps them frozen the same way)."""
    freeze(base, n_reused)
    thawed = n_reused if unfreeze == "all" else min(unfreeze, n_reused)
    for unit in reusable_layers(base)[n_reused - thawed:n_reused]:
        for layer in unit:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)


def can_cache(base: keras.Model, n_reused: int, training: TrainingConfig) -> bool:
    """Caching needs a base that is wholly frozen and nothing random in it (EfficientNet's
    stochastic depth is Dropout inside the base, active while training). Augmentation in
    front of it is left out: the head learns from the images as they are, and augmentation
    starts when fine-tuning teaches the base."""
    return (training.cache_frozen_features and n_reused == len(reusable_layers(base))
            and not any(isinstance(layer, keras.layers.Dropout) for layer in base.layers))


def frozen_phase(model: keras.Model, base: keras.Model, head: keras.Model, n_reused: int,
                 splits: Splits, training: TrainingConfig, run_dir: str, seed: int) -> None:
    """Phase 1: freeze the reused layers and train the new head (and any fresh layers)."""
    freeze(base, n_reused)
    if can_cache(base, n_reused, training) and training.frozen.epochs > 0:
        # The head is shared with `model`, so once trained here it is back on the base.
        cached = bottleneck_cache.cache_splits(base, splits, training.batch_size, seed)
        fit(head, cached, "frozen", training.frozen, training, run_dir)
    else:
        fit(model, splits, "frozen", training.frozen, training, run_dir)


def frozen_bottom(base: keras.Model, training: TrainingConfig) -> keras.KerasTensor | None:
    """Where fine-tuning can cut the base: the highest layer output below every trainable
    layer from which the rest of the base is computed (a residual block is cut above or
    below, never inside); None when nothing below trains frozen, or something random (an
    augmentation in front, Dropout in the base) would make cached outputs wrong."""
    layers = base_layers(base)
    first_trained = next((i for i, layer in enumerate(layers) if layer.trainable_weights), 0)
    if (not training.cache_frozen_features or training.augmentation.enabled or first_trained == 0
            or any(isinstance(layer, keras.layers.Dropout) for layer in layers)):
        return None
    for layer in reversed(layers[:first_trained]):
        try:
            keras.Model(layer.output, base.output)
        except ValueError:  # a layer above also reads a tensor from below this one
            continue
        return layer.output
    return None


def fine_tune_phase(model: keras.Model, base: keras.Model, head: keras.Model, n_reused: int,
                    splits: Splits, training: TrainingConfig, run_dir: str, seed: int) -> None:
    """Phase 2: thaw the top reused layers and train them with the head at a low rate.

    When the layers below the thawed ones stay frozen and nothing random precedes them,
    their output is computed once, and the thawed layers and head train on it (the frozen
    phase's caching, one level deeper): each epoch then costs the top of the base only."""
    phase: FineTuneConfig = training.fine_tune
    unfreeze_top(base, n_reused, phase.unfreeze)
    cut = frozen_bottom(base, training) if phase.epochs > 0 else None
    if cut is None:
        fit(model, splits, "fine_tune", phase, training, run_dir)
        return
    # The top shares its layers with `model`, so what it learns is back on the base.
    with base.distribute_strategy.scope():
        bottom, top = keras.Model(base.input, cut), keras.Model(cut, head(base.output))
    cached = bottleneck_cache.cache_splits(bottom, splits, training.batch_size, seed)
    fit(top, cached, "fine_tune", phase, training, run_dir)
