"""Pretraining without labels: a pretext task whose targets come from the images themselves
(Hands-On ML 11.2.7 unsupervised pretraining, 11.2.8 an auxiliary task).

- `autoencoder`: the base encodes each image into its feature vector and a decoder
  reconstructs the image from it (mean squared error); the decoder is thrown away.
- `rotation`: every image is shown turned by 0, 90, 180 and 270 degrees and the base,
  under a 4-way head, learns which turn it sees (Gidaris et al. 2018, "Unsupervised
  representation learning by predicting image rotations"). Needs square images.

Either way the model holds the same 'base' sub-model a supervised pretraining trains, so
the transfer Trainer reuses it unchanged (reuse_layers, unfreeze, BatchNorm rules). The
source's labels, if it has any, are never used. Augmentation is not applied: random turns
would make the rotation task ambiguous, and the autoencoder's target is its input.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from trainer.architectures import ImageShape, assemble, build_head
from trainer.image_inputs import Splits
from trainer.options import PretrainingMethod
from transform.features import TRANSFORMED_IMAGE_KEY

ROTATIONS = 4  # quarter turns: 0, 90, 180, 270 degrees
_DECODER_FILTERS = (64, 32)  # each doubles the height and width


def decoder(feature_shape: tuple[int, ...], image_shape: ImageShape) -> keras.Model:
    """Feature vector (or maps) → an image of `image_shape`: a dense layer onto a grid a
    quarter of the image's size, two stride-2 transposed convolutions, and a linear 3x3
    convolution to the image's channels (linear: the pixels may be in [0, 1] or [-1, 1])."""
    height, width, channels = image_shape
    grid = (-(-height // 4), -(-width // 4))
    inputs = keras.Input(feature_shape)
    x = inputs
    if len(feature_shape) == 3:
        x = keras.layers.GlobalAveragePooling2D(name="decoder_pool")(x)
    x = keras.layers.Dense(grid[0] * grid[1] * _DECODER_FILTERS[0], activation="relu",
                           name="decoder_dense")(x)
    x = keras.layers.Reshape((*grid, _DECODER_FILTERS[0]), name="decoder_grid")(x)
    for i, filters in enumerate(_DECODER_FILTERS, start=1):
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                         activation="relu", name=f"decoder_up{i}")(x)
    if (grid[0] * 4, grid[1] * 4) != (height, width):
        x = keras.layers.Resizing(height, width, name="decoder_resize")(x)
    outputs = keras.layers.Conv2D(channels, 3, padding="same", dtype="float32",
                                  name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="decoder")


def autoencoder(base: keras.Model, image_shape: ImageShape) -> keras.Model:
    """`image_xf → base → decoder`, sharing the base's layers."""
    inputs = keras.Input(base.input_shape[1:], name=TRANSFORMED_IMAGE_KEY)
    outputs = decoder(base.output_shape[1:], image_shape)(base(inputs))
    return keras.Model(inputs, outputs, name="autoencoder")


def rotation_classifier(base: keras.Model, dropout: float) -> keras.Model:
    """`image_xf → base → head` with a 4-way head, one class per quarter turn."""
    return assemble(base, build_head(base.output_shape[1:], ROTATIONS, dropout), None)


def _reconstruct(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    del labels  # never read: the image is its own target
    return images, images


def rotate_batch(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch [B, H, W, C] → its 4 quarter turns [4B, H, W, C] and how far each is turned
    (0..3, int64); the images' own labels are dropped."""
    del labels
    size = tf.shape(images, out_type=tf.int64)[0]
    turned = [tf.image.rot90(images, k) for k in range(ROTATIONS)]
    turns = [tf.fill([size], tf.constant(k, tf.int64)) for k in range(ROTATIONS)]
    return tf.concat(turned, axis=0), tf.concat(turns, axis=0)


def pretext_splits(method: PretrainingMethod, splits: Splits) -> Splits:
    """The train and eval batches of `method`'s task: (image, image) or (turned image, turn)."""
    task = {"autoencoder": _reconstruct, "rotation": rotate_batch}[method]
    return Splits(train=splits.train.map(task), eval=splits.eval.map(task))


def pretext_model(method: PretrainingMethod, base: keras.Model, image_shape: ImageShape,
                  dropout: float) -> tuple[keras.Model, str]:
    """The model `method` trains around `base`, and its loss."""
    if method == "rotation" and image_shape[0] != image_shape[1]:
        raise ValueError(f"rotation pretraining turns images by quarter turns, which needs "
                         f"square images; they are {image_shape[0]}x{image_shape[1]}")
    if method == "autoencoder":
        return autoencoder(base, image_shape), "mean_squared_error"
    return rotation_classifier(base, dropout), "sparse_categorical_crossentropy"
