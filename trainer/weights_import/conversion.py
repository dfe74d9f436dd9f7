"""What every conversion does: match the source's tensors to the Keras layers by one table,
use each exactly once, check every shape, and compare the converted model with a reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

Tensors = dict[str, np.ndarray]
Table = list[tuple[str, tuple[str, ...]]]
"""(Keras layer, the source tensors for its weights in the order of `layer.weights`)."""


@dataclass(frozen=True)
class Conversion:
    """How one architecture's weights are read, named, laid out and checked."""

    read: Callable[[str], Tensors]
    build: Callable[[bool], keras.Model]  # include_top -> the model, randomly initialised
    backbone: Table
    top: Table  # the ImageNet classifier: converted only with include_top
    ignored: Callable[[str], bool]  # known source tensors that are no weights of the model
    to_keras: Callable[[str, np.ndarray], np.ndarray]
    check: Callable[[Tensors, keras.Model], float]  # max abs difference from a reference
    expected: str  # what a source file holds, for errors


def convert(conversion: Conversion, tensors: Tensors, model: keras.Model,
            include_top: bool) -> list[str]:
    """Set `model`'s weights from `tensors`; the source tensors left out, by name."""
    table = conversion.backbone + (conversion.top if include_top else [])
    used = [name for _, names in table for name in names]
    known = set(used) | {name for _, names in conversion.top for name in names}
    unused = [name for name in tensors if name not in known and not conversion.ignored(name)]
    missing = [name for name in used if name not in tensors]
    if missing or unused:
        raise ValueError(f"expected {conversion.expected}: " + "; ".join(
            _listed(label, names) for label, names in (("missing", missing),
                                                       ("not used", unused)) if names))
    for layer_name, names in table:
        layer = model.get_layer(layer_name)
        if len(layer.weights) != len(names):
            raise ValueError(f"{layer_name} has {len(layer.weights)} weights, the table names "
                             f"{len(names)}")
        layer.set_weights([_converted(conversion, name, tensors[name], weight)
                           for name, weight in zip(names, layer.weights)])
    return [name for name in tensors if name not in used]


def _listed(label: str, names: list[str]) -> str:
    """E.g. "missing ['a', 'b', 'c', 'd', 'e'] … (7)": the first five names and the count."""
    return f"{label} {names[:5]}{' …' if len(names) > 5 else ''} ({len(names)})"


def _converted(conversion: Conversion, name: str, value: np.ndarray,
               weight: tf.Variable) -> np.ndarray:
    converted = conversion.to_keras(name, value)
    if tuple(converted.shape) != tuple(weight.shape):
        raise ValueError(f"{name}: shape {value.shape} (in Keras' layout {converted.shape}) "
                         f"does not fit {weight.name} of shape {tuple(weight.shape)}")
    return converted


def check_close(reference: np.ndarray, converted: np.ndarray, what: str) -> float:
    """Max abs difference; raises if above 1e-3 of the reference's scale (float32 sums)."""
    difference = float(np.max(np.abs(reference - converted)))
    if difference > 1e-3 * max(1.0, float(np.max(np.abs(reference)))):
        raise ValueError(f"numeric check failed: {what} differs from the reference by up to "
                         f"{difference:.3g}")
    return difference
