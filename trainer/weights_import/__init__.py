"""`tfx-transfer weights import`: ImageNet weights of other frameworks as Keras H5 weights files,
which `model.weights` (a local file) then loads like any Keras application's."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass

import tf_keras as keras

from trainer.weights_import import efficientnet_lite0, mobilenet_v1
from trainer.weights_import.conversion import Conversion, convert

# By the names trainer.options.IMPORTABLE_WEIGHTS (the CLI's choices) lists.
CONVERSIONS: dict[str, Conversion] = {
    "mobilenet_v1": mobilenet_v1.CONVERSION,
    "efficientnet_lite0": efficientnet_lite0.CONVERSION,
}


@dataclass(frozen=True)
class ImportSummary:
    architecture: str
    output: str
    converted: int  # source tensors written
    left_out: list[str]  # source tensors not written: known non-weights, the unbuilt top
    max_difference: float  # of the numeric check against the numpy reference
    seconds: float


def import_weights(architecture: str, source: str, output: str,
                   include_top: bool = False) -> ImportSummary:
    """Convert `source` into a Keras H5 weights file at `output`, replaced atomically.

    Without the top the file is what `weights: <output>` loads into the project's base."""
    started = time.monotonic()
    if architecture not in CONVERSIONS:
        raise ValueError(f"architecture {architecture!r}: expected one of {list(CONVERSIONS)}")
    if not output.endswith(".h5"):
        raise ValueError(f"{output}: the output must end in .h5 (Keras' H5 weights format)")
    conversion = CONVERSIONS[architecture]
    tensors = conversion.read(source)
    model = conversion.build(include_top)
    try:
        left_out = convert(conversion, tensors, model, include_top)
        max_difference = conversion.check(tensors, model)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from error
    _save_atomically(model, output)
    return ImportSummary(architecture, output, len(tensors) - len(left_out), left_out,
                         max_difference, time.monotonic() - started)


def _save_atomically(model: keras.Model, output: str) -> None:
    # Beside the output, so the rename stays on one filesystem; '.h5' last for Keras' format.
    directory, name = os.path.split(os.path.abspath(output))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp.h5")
    try:
        model.save_weights(temporary)
        os.replace(temporary, output)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
