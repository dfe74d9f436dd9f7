"""Frozen-layer caching: run a frozen base over the data once and train the head on the result.

While the base is frozen and nothing random precedes it (no augmentation), its output for
an image never changes, so computing it every epoch is wasted work. The cache is held in
memory: its size is logged so a large dataset's cost is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from trainer.image_inputs import Splits

# Batch size where nothing is learned (extracting features, scoring the cached eval split): it
# changes no result, and large batches run faster than the training batch, on GPU most of all.
INFERENCE_BATCH = 256


@dataclass(frozen=True)
class CachedSplit:
    """Base outputs and labels of one split, in matching order."""

    features: np.ndarray
    labels: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.features.nbytes + self.labels.nbytes


def extract_features(base: keras.Model, dataset: tf.data.Dataset) -> CachedSplit:
    """One pass of `dataset` through the base in inference mode, in large batches."""
    features, labels = [], []
    for images, batch_labels in dataset.unbatch().batch(INFERENCE_BATCH).prefetch(2):
        features.append(base.predict_on_batch(images))
        labels.append(batch_labels.numpy())
    return CachedSplit(np.concatenate(features), np.concatenate(labels))


def batches(split: CachedSplit, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches of cached features, reshuffled every epoch like the uncached train split."""
    dataset = tf.data.Dataset.from_tensor_slices((split.features, split.labels))
    if shuffle:
        dataset = dataset.shuffle(len(split.labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size)


def cache_splits(base: keras.Model, splits: Splits, batch_size: int, seed: int) -> Splits:
    """The train and eval splits as base outputs, computed once; logs the memory they hold."""
    train = extract_features(base, splits.train)
    eval_ = extract_features(base, splits.eval)
    logging.info("Frozen-layer cache: %d train + %d eval examples of shape %s, %d bytes",
                 len(train.labels), len(eval_.labels), train.features.shape[1:],
                 train.nbytes + eval_.nbytes)
    return Splits(train=batches(train, batch_size, shuffle=True, seed=seed),
                  eval=batches(eval_, INFERENCE_BATCH, shuffle=False, seed=seed))
