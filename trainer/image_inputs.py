"""Training data: (image_xf, label) batches read from the Transform's examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from trainer.architectures import ImageShape
from trainer.devices import shard_policy
from transform.features import LABEL_KEY, TRANSFORMED_IMAGE_KEY

if TYPE_CHECKING:  # Importing TFX takes seconds; code that only needs Splits skips it.
    from tfx.components.trainer.fn_args_utils import FnArgs


@dataclass(frozen=True)
class Splits:
    """Train batches (shuffled) and eval batches (in file order, for early stopping only)."""

    train: tf.data.Dataset
    eval: tf.data.Dataset


def image_shape(tft_output: tft.TFTransformOutput) -> ImageShape:
    """[height, width, channels] of the transformed image feature."""
    spec = tft_output.transformed_feature_spec()[TRANSFORMED_IMAGE_KEY]
    height, width, channels = spec.shape
    return height, width, channels


def transformed_dataset(fn_args: FnArgs, tft_output: tft.TFTransformOutput, files: list[str],
                        batch_size: int, shuffle: bool, seed: int,
                        max_steps: int | None = None) -> tf.data.Dataset:
    """One pass over `files` as (image [B,H,W,C] float32, label [B] int64) batches."""
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY,
                                             num_epochs=1, shuffle=shuffle, shuffle_seed=seed)
    dataset = fn_args.data_accessor.tf_dataset_factory(
        files, options, tft_output.transformed_metadata.schema)
    dataset = dataset.map(lambda features, label: (features[TRANSFORMED_IMAGE_KEY], label))
    sharding = tf.data.Options()
    sharding.experimental_distribute.auto_shard_policy = shard_policy(
        sum(len(tf.io.gfile.glob(pattern)) for pattern in files))
    dataset = dataset.with_options(sharding)
    # TFX's train/eval steps, when set, cap each pass; one pass is one Keras epoch.
    return dataset.take(max_steps) if max_steps else dataset


def training_splits(fn_args: FnArgs, tft_output: tft.TFTransformOutput, batch_size: int,
                    seed: int) -> Splits:
    """The Trainer's train and eval splits; the test split never reaches the Trainer."""
    return Splits(
        train=transformed_dataset(fn_args, tft_output, fn_args.train_files, batch_size,
                                  shuffle=True, seed=seed, max_steps=fn_args.train_steps),
        eval=transformed_dataset(fn_args, tft_output, fn_args.eval_files, batch_size,
                                 shuffle=False, seed=seed, max_steps=fn_args.eval_steps))
