"""Read the weights of a TF1 model: a frozen GraphDef (.pb) or a checkpoint (TF-slim names)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError


def read_tf_weights(path: str) -> dict[str, np.ndarray]:
    """The weights by variable name: a frozen graph's constants or a checkpoint's variables.

    A file is read as a frozen GraphDef; a checkpoint is named by its prefix (`model.ckpt`),
    its `.index` file or its directory."""
    if os.path.isfile(path) and not path.endswith(".index"):
        weights = _graph_constants(path)
    else:
        weights = _checkpoint_variables(path.removesuffix(".index"))
    # Scalars and integers are not weights: BatchNorm's epsilon and a reshape's shape in a
    # graph, global_step in a checkpoint.
    weights = {name: value for name, value in weights.items()
               if value.ndim >= 1 and np.issubdtype(value.dtype, np.floating)}
    if not weights:
        raise ValueError(f"{path}: no weights in it (expected a frozen GraphDef or a TF "
                         "checkpoint)")
    return weights


def read_graph_def(path: str) -> tf.compat.v1.GraphDef:
    """The GraphDef in a frozen .pb file."""
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as file:
        try:
            graph_def.ParseFromString(file.read())
        except DecodeError as error:
            raise ValueError(f"{path}: not a frozen GraphDef ({error})") from error
    return graph_def


def _graph_constants(path: str) -> dict[str, np.ndarray]:
    return {node.name: tf.make_ndarray(node.attr["value"].tensor)
            for node in read_graph_def(path).node if node.op == "Const"}


def _checkpoint_variables(prefix: str) -> dict[str, np.ndarray]:
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"{prefix}: neither a frozen GraphDef file nor a TF checkpoint "
                         f"({error})") from error
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
