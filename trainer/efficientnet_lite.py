"""EfficientNet-Lite0 (Tan & Le, 2019; the Lite variants of the TensorFlow TPU repository) in
tf_keras, with Keras applications' signature and layer names.

Lite is EfficientNet-B0's layout made friendly to quantisation and mobile accelerators: ReLU6
instead of swish and no squeeze-and-excitation. There are no Keras ImageNet weights for it;
`tfx-transfer weights import` converts them from a PyTorch checkpoint.

Inputs are RGB in [-1, 1] (`x / 127.5 - 1`, the project's `image.scale: symmetric`). The
weights were trained on `(x - 127) / 128`; the two differ by at most 0.008 (measured on
matplotlib's grace_hopper.jpg: top-1 'military uniform' either way, p 0.392 vs 0.389).
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

BATCH_NORM_EPSILON = 1e-3
DROPOUT = 0.2


@dataclass(frozen=True)
class Block:
    """One mobile inverted bottleneck (MBConv) block, no squeeze-and-excitation."""

    name: str
    input_filters: int
    filters: int
    expand_ratio: int
    kernel: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.input_filters == self.filters


# EfficientNet-B0's stages: (expand ratio, kernel, stride of the first block, filters, blocks).
# Lite0 scales neither width nor depth, so these are its blocks as they are.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_FILTERS, TOP_FILTERS = 32, 1280


def blocks() -> list[Block]:
    """The 16 blocks bottom to top, named as Keras' EfficientNet names them: block1a, block2a…"""
    result: list[Block] = []
    input_filters = STEM_FILTERS
    for stage, (expand_ratio, kernel, stride, filters, repeats) in enumerate(STAGES, start=1):
        for i in range(repeats):
            result.append(Block(f"block{stage}{chr(ord('a') + i)}", input_filters, filters,
                                expand_ratio, kernel, stride if i == 0 else 1))
            input_filters = filters
    return result


def efficientnet_lite0(include_top: bool = True, weights: str | None = None,
                       input_shape: tuple[int | None, int | None, int] | None = None,
                       pooling: str | None = None, classes: int = 1000,
                       classifier_activation: str | None = "softmax") -> keras.Model:
    """EfficientNet-Lite0; `weights` None (random) or a local weights file."""
    if weights == "imagenet":
        raise ValueError("efficientnet_lite0 has no Keras ImageNet weights to download: convert "
                         "them with `tfx-transfer weights import --architecture "
                         "efficientnet_lite0` and pass the file")
    inputs = keras.Input(input_shape or ((224, 224, 3) if include_top else (None, None, 3)))
    x = _normalised(_conv(STEM_FILTERS, 3, 2, "stem_conv")(inputs), "stem")
    for block in blocks():
        x = _mb_conv(x, block)
    x = _normalised(_conv(TOP_FILTERS, 1, 1, "top_conv")(x), "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(DROPOUT, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name="efficientnet_lite0")
    if weights is not None:
        model.load_weights(weights)
    return model


def _mb_conv(inputs: tf.Tensor, block: Block) -> tf.Tensor:
    # No stochastic depth (drop connect): the frozen phase caches the base's outputs once,
    # which needs a base that computes the same features every time it is called.
    name = block.name
    x = inputs
    if block.expand_ratio != 1:
        x = _conv(block.input_filters * block.expand_ratio, 1, 1, f"{name}_expand_conv")(x)
        x = _normalised(x, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(block.kernel, block.stride, padding="same", use_bias=False,
                                     name=f"{name}_dwconv")(x)
    x = _normalised(x, name)
    x = _conv(block.filters, 1, 1, f"{name}_project_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{name}_project_bn")(x)
    if block.residual:
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _conv(filters: int, kernel: int, stride: int, name: str) -> keras.layers.Layer:
    # 'same' is TensorFlow's padding (the extra row and column at the bottom and right),
    # which the PyTorch port reproduces with its Conv2dStaticSamePadding.
    return keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)


def _normalised(x: tf.Tensor, prefix: str) -> tf.Tensor:
    """BatchNorm then ReLU6, named `<prefix>_bn` and `<prefix>_activation`."""
    x = keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=f"{prefix}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{prefix}_activation")(x)
