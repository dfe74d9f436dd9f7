"""TF-slim MobileNetV1 1.0/224 (a frozen graph or a checkpoint) → keras.applications.MobileNet.

Both apply BatchNorm with epsilon 1e-3 after bias-free convolutions and take RGB in [-1, 1],
so the layers map one to one (tensorflow/models research/slim/nets/mobilenet_v1.py).
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from trainer.weights_import import reference
from trainer.weights_import.conversion import Conversion, Table, Tensors, check_close
from trainer.weights_import.tf_graph import read_tf_weights

SCOPE = "MobilenetV1"
LOGITS = f"{SCOPE}/Logits/Conv2d_1c_1x1"
# The retrained 2-class head frozen into the graph beside the ImageNet one.
RETRAINED_HEAD = "final_training_ops/"


def _batch_norm(scope: str) -> tuple[str, ...]:
    return tuple(f"{SCOPE}/{scope}/BatchNorm/{name}"
                 for name in ("gamma", "beta", "moving_mean", "moving_variance"))


BACKBONE: Table = [
    ("conv1", (f"{SCOPE}/Conv2d_0/weights",)),
    ("conv1_bn", _batch_norm("Conv2d_0")),
    *[pair for i in range(1, 14) for pair in (
        (f"conv_dw_{i}", (f"{SCOPE}/Conv2d_{i}_depthwise/depthwise_weights",)),
        (f"conv_dw_{i}_bn", _batch_norm(f"Conv2d_{i}_depthwise")),
        (f"conv_pw_{i}", (f"{SCOPE}/Conv2d_{i}_pointwise/weights",)),
        (f"conv_pw_{i}_bn", _batch_norm(f"Conv2d_{i}_pointwise")))],
]
TOP: Table = [("conv_preds", (f"{LOGITS}/weights", f"{LOGITS}/biases"))]


def to_keras(name: str, value: np.ndarray) -> np.ndarray:
    """Slim's kernels are Keras' (HWIO; depthwise (kh, kw, C, 1)). Its classifier has 1001
    classes, 0 being 'background', which Keras' 1000 ImageNet classes leave out."""
    return value[..., 1:] if name.startswith(f"{LOGITS}/") else value


def build(include_top: bool) -> keras.Model:
    return keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=1.0,
                                        include_top=include_top, weights=None)


def check(tensors: Tensors, model: keras.Model) -> float:
    """The first two layers (conv1, conv_dw_1, conv_pw_1, each with its BatchNorm and ReLU6)
    in numpy from the source tensors, against the model, on random [-1, 1] images."""
    images = reference.random_images(model.input_shape[1:])

    def normalised(x: np.ndarray, scope: str) -> np.ndarray:
        return reference.relu6(reference.batch_norm(x, *(tensors[n] for n in _batch_norm(scope))))

    x = normalised(reference.conv(images, tensors[f"{SCOPE}/Conv2d_0/weights"], 2, "ijco"),
                   "Conv2d_0")
    x = normalised(reference.depthwise_conv(
        x, tensors[f"{SCOPE}/Conv2d_1_depthwise/depthwise_weights"][..., 0], 1, "ijc"),
        "Conv2d_1_depthwise")
    x = normalised(reference.conv(x, tensors[f"{SCOPE}/Conv2d_1_pointwise/weights"], 1, "ijco"),
                   "Conv2d_1_pointwise")
    layer = keras.Model(model.input, model.get_layer("conv_pw_1_relu").output)
    return check_close(x, layer(images).numpy(), "conv_pw_1_relu")


CONVERSION = Conversion(
    read=read_tf_weights, build=build, backbone=BACKBONE, top=TOP,
    ignored=lambda name: name.startswith(RETRAINED_HEAD), to_keras=to_keras, check=check,
    expected="TF-slim MobileNetV1 1.0/224 weights (MobilenetV1/Conv2d_0/weights …)")
