"""The networks: a base (feature extractor) and a head (classifier), each its own sub-model.

Every classifier is `image_xf → [augmentation] → base → head`. The base is a separate
keras.Model named 'base' so the transfer phases can freeze and unfreeze its layers; the head
is a keras.Model named 'head' so the frozen phase can train it alone on cached base outputs.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf
import tf_keras as keras

from trainer.efficientnet_lite import efficientnet_lite0
from trainer.options import AugmentationConfig, ModelConfig
from transform.features import TRANSFORMED_IMAGE_KEY

ImageShape = tuple[int, int, int]

_APPLICATIONS: dict[str, Callable[..., keras.Model]] = {
    "mobilenet_v1": keras.applications.MobileNet,
    "mobilenet_v2": keras.applications.MobileNetV2,
    "efficientnet_b0": keras.applications.EfficientNetB0,
    "efficientnet_lite0": efficientnet_lite0,
    "xception": keras.applications.Xception,
    "resnet50": keras.applications.ResNet50,
}
MIN_APPLICATION_SIZE = {"mobilenet_v1": 32, "mobilenet_v2": 32, "efficientnet_b0": 32,
                        "efficientnet_lite0": 32, "xception": 71, "resnet50": 32}
"""Smallest height and width each Keras application accepts; all of them need 3 channels."""


def dense_base(input_shape: ImageShape) -> keras.Model:
    """Géron's chapter-11 network without its output layer: five SELU hidden layers."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate((300, 100, 50, 50, 50), start=1):
        x = keras.layers.Dense(units, activation="selu", kernel_initializer="lecun_normal",
                               name=f"hidden{i}")(x)
    return keras.Model(inputs, x, name="base")


def cnn_base(input_shape: ImageShape) -> keras.Model:
    """Three convolution blocks with BatchNorm, then global average pooling (fits 28x28x1)."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        # No conv bias: the BatchNorm right after it has its own offset.
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        # Momentum 0.9, not 0.99: a 200-image target set gives a few steps an epoch, and the
        # eval split (hence early stopping) sees the moving statistics from the first epoch.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, x, name="base")


def application_base(architecture: str, input_shape: ImageShape, weights: str | None,
                     alpha: float = 1.0) -> keras.Model:
    """A Keras application without its top, average-pooled; `weights` None, a file or 'imagenet'."""
    height, width, channels = input_shape
    minimum = MIN_APPLICATION_SIZE[architecture]
    if channels != 3 or min(height, width) < minimum:
        raise ValueError(f"{architecture} needs RGB images of at least {minimum}x{minimum}: "
                         f"set image.channels=3 and height, width >= {minimum} "
                         f"(got {height}x{width}x{channels})")
    extra = {"alpha": alpha} if architecture == "mobilenet_v2" else {}
    application = _APPLICATIONS[architecture](include_top=False, weights=weights,
                                              input_shape=input_shape, pooling="avg", **extra)
    # Renamed so every architecture's base is found the same way: model.get_layer('base').
    return keras.Model(application.inputs, application.outputs, name="base")


def build_base(config: ModelConfig, input_shape: ImageShape,
               weights: str | None = None) -> keras.Model:
    """The base of `config.architecture`, randomly initialised unless `weights` is given."""
    if config.architecture == "dense":
        return dense_base(input_shape)
    if config.architecture == "cnn":
        return cnn_base(input_shape)
    return application_base(config.architecture, input_shape, weights, config.alpha)


def base_layers(base: keras.Model) -> list[keras.layers.Layer]:
    """The base's layers bottom to top, without its input layer."""
    return [layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer)]


def reusable_layers(base: keras.Model) -> list[list[keras.layers.Layer]]:
    """What `reuse_layers` and `unfreeze` count, bottom to top: each layer with weights,
    together with the BatchNormalization layers that normalise its output (the cnn has 3:
    conv1+bn1, conv2+bn2, conv3+bn3; the dense base 5). Layers without weights (ReLU,
    pooling) carry nothing to reuse and are not counted."""
    units: list[list[keras.layers.Layer]] = []
    unit_of: dict[str, list[keras.layers.Layer]] = {}
    for layer in base_layers(base):
        if not layer.weights:
            continue
        producer = _input_layer(layer) if isinstance(
            layer, keras.layers.BatchNormalization) else None
        if producer is not None and producer.name in unit_of:
            unit_of[producer.name].append(layer)  # a branchy net lists it far from its conv
        else:
            units.append([layer])
            unit_of[layer.name] = units[-1]
    return units


def _input_layer(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    """The layer whose output `layer` takes, when it takes exactly one."""
    inbound = layer.inbound_nodes[0].inbound_layers if layer.inbound_nodes else None
    return inbound if isinstance(inbound, keras.layers.Layer) else None


def count_reused(base: keras.Model, reuse_layers: int | str) -> int:
    """How many of the base's reusable layers `reuse_layers` ('all' or a number) means."""
    n_layers = len(reusable_layers(base))
    if reuse_layers == "all":
        return n_layers
    if reuse_layers > n_layers:
        raise ValueError(f"reuse_layers={reuse_layers}, but the base has {n_layers} layers "
                         "with weights")
    return reuse_layers


def copy_bottom_layers(source: keras.Model, target: keras.Model, n_layers: int) -> None:
    """Copy the weights of the bottom `n_layers` reusable layers of `source` into `target`."""
    source_units, target_units = reusable_layers(source), reusable_layers(target)
    if [len(unit) for unit in source_units] != [len(unit) for unit in target_units]:
        raise ValueError(f"the pretrained base has {len(source_units)} layers with weights, "
                         f"this architecture {len(target_units)}: was it pretrained with "
                         "another architecture?")
    for source_unit, target_unit in zip(source_units[:n_layers], target_units):
        for source_layer, target_layer in zip(source_unit, target_unit):
            target_layer.set_weights(source_layer.get_weights())


def build_head(feature_shape: tuple[int, ...], n_classes: int, dropout: float) -> keras.Model:
    """Dropout and a softmax Dense layer; pools first if the base ends in feature maps."""
    inputs = keras.Input(feature_shape)
    x = inputs
    if len(feature_shape) == 3:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    # float32 even under mixed precision: softmax in float16 is not numerically safe.
    outputs = keras.layers.Dense(n_classes, activation="softmax", dtype="float32",
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


class RandomQuarterTurn(keras.layers.Layer):
    """Turns each image of a batch by a random number of quarter turns; in training only.
    Square images only: a quarter turn swaps height and width."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def call(self, images: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if not training:
            return images
        turns = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], 0, 4, dtype=tf.int32,
                                  seed=self.seed)
        # k quarter turns anticlockwise, the batch at once: transpose when k is odd, then
        # reverse the rows when k is 1 or 2 and the columns when k is 2 or 3.
        images = tf.where(turns % 2 == 1, tf.transpose(images, [0, 2, 1, 3]), images)
        images = tf.where((turns == 1) | (turns == 2), tf.reverse(images, [1]), images)
        return tf.where(turns >= 2, tf.reverse(images, [2]), images)

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


def build_augmentation(config: AugmentationConfig, seed: int) -> keras.Model | None:
    """Random flips, quarter turns, rotations, zooms and shifts; None when all are off.
    Training only."""
    if not config.enabled:
        return None
    layers: list[keras.layers.Layer] = []
    if config.flip != "none":
        layers.append(keras.layers.RandomFlip(config.flip, seed=seed))
    if config.quarter_turns:
        layers.append(RandomQuarterTurn(seed=seed + 4, name="random_quarter_turn"))
    if config.rotation > 0:
        layers.append(keras.layers.RandomRotation(config.rotation, seed=seed + 1))
    if config.zoom > 0:
        layers.append(keras.layers.RandomZoom(config.zoom, seed=seed + 2))
    if config.translation > 0:
        layers.append(keras.layers.RandomTranslation(config.translation, config.translation,
                                                     seed=seed + 3))
    return keras.Sequential(layers, name="augmentation")


def assemble(base: keras.Model, head: keras.Model,
             augmentation: keras.Model | None) -> keras.Model:
    """`image_xf → [augmentation] → base → head`, sharing the base's and head's layers.

    The base runs in the mode of the call: BatchNorm layers that are not trainable normalise
    with their moving statistics and never update them (Keras' rule), which is how the
    transfer phases keep a reused layer's statistics (see trainer/phases.py)."""
    inputs = keras.Input(base.input_shape[1:], name=TRANSFORMED_IMAGE_KEY)
    x = augmentation(inputs) if augmentation is not None else inputs
    return keras.Model(inputs, head(base(x)), name="classifier")
