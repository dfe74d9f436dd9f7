"""Classify image files with a pushed SavedModel through its raw-bytes signature."""

from __future__ import annotations

import os
import re
import stat
from typing import Iterable, Iterator

import tensorflow as tf

from transform.image_limits import ImageLimits

RAW_SIGNATURE = "serving_raw"
BATCH = 32  # images classified together; their bytes stay under the byte cap as well
Read = tuple[str, bytes | str]  # a file, and its bytes or why it is refused


def resolve_model_dir(path: str) -> str:
    """A SavedModel dir, or the highest numeric version of a serving dir that holds a
    saved_model.pb (the Pusher's rule: anything else there is not a model)."""
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [name for name in (entry.rstrip("/") for entry in tf.io.gfile.listdir(path))
                if name.isdigit()
                and tf.io.gfile.exists(os.path.join(path, name, "saved_model.pb"))]
    if not versions:
        raise FileNotFoundError(f"{path}: neither a SavedModel nor a serving dir with a "
                                "numeric version holding saved_model.pb")
    return os.path.join(path, max(versions, key=lambda name: (int(name), name)))


def _class_names(model_dir: str, outputs: int) -> list[str] | None:
    """The model's class names, one per output; a vocabulary of another size is an error."""
    path = os.path.join(model_dir, "assets.extra", "label_vocabulary.txt")
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as file:
        names = file.read().split("\n")[:-1]  # one name a line, each line ended
    if len(names) != outputs:
        raise ValueError(f"{path}: {len(names)} class names for a model with {outputs} "
                         "outputs; the vocabulary doesn't belong to this model")
    return names


_NOISE = ("Graph execution error", "Detected at node", "<stack traces", "[[")


def _reason(error: tf.errors.OpError) -> str:
    """TensorFlow's reason without the graph and op names it wraps it in."""
    lines = [re.sub(r"^\{\{[^}]*\}\}\s*|\s*\[Op:[^\]]*\]$", "", line.strip())
             for line in error.message.splitlines()]
    reasons = [line for line in lines if line and not line.startswith(_NOISE)]
    return reasons[-1] if reasons else error.message.strip()


def _failure(error: tf.errors.OpError) -> str:
    reason = _reason(error)
    return (f"not an image ({reason})" if "image file format" in reason
            else f"rejected by the model ({reason})")


def _outputs(classify, images: list[bytes]) -> list[dict | str]:
    """Per image, its signature outputs, or why the model refused it: the batch at once, and
    one image at a time only when the batch fails, so one bad file fails only itself."""
    try:
        batch = classify(image_bytes=tf.constant(images))
        return [{key: value[i] for key, value in batch.items()} for i in range(len(images))]
    except tf.errors.InvalidArgumentError:
        if len(images) == 1:
            raise
    found: list[dict | str] = []
    for image in images:
        try:
            found += _outputs(classify, [image])
        except tf.errors.InvalidArgumentError as error:
            found.append(_failure(error))
    return found


def _not_a_file(path: str) -> str | None:
    """Why `path` is not a regular file to read, or None (FIFOs would block the read)."""
    if tf.io.gfile.isdir(path):
        return "is a directory, not an image file"
    if "://" not in path and os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        return "is not a regular file (a FIFO, socket or device)"
    return None


def _read(path: str, limits: ImageLimits) -> bytes | str:
    """The file's bytes, or why it is refused before the model sees it."""
    try:
        problem = _not_a_file(path) or limits.size_problem(tf.io.gfile.stat(path).length)
        if problem:
            return problem
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
    except (tf.errors.OpError, OSError) as error:
        reason = _reason(error) if isinstance(error, tf.errors.OpError) else str(error)
        return f"cannot be read ({reason})"
    return limits.problem(data) or data


def _batches(paths: Iterable[str], limits: ImageLimits) -> Iterator[list[Read]]:
    """Files read in order, grouped so that a group holds at most BATCH images and, beyond
    its first, at most limits.max_bytes; a refused file ends its group."""
    group: list[Read] = []
    size = 0
    for path in paths:
        data = _read(path, limits)
        if group and not isinstance(data, str) and (
                len(group) == BATCH or size + len(data) > limits.max_bytes):
            yield group
            group, size = [], 0
        group.append((path, data))
        size += 0 if isinstance(data, str) else len(data)
        if isinstance(data, str):
            yield group
            group, size = [], 0
    if group:
        yield group


def classify_files(model_dir: str, image_paths: Iterable[str],
                   limits: ImageLimits = ImageLimits()) -> Iterator[dict]:
    """Class name, class id and per-class probabilities for each image file, in order, as
    each group is classified, through the model's own decoding and checks; a file refused
    here or by the model gets an `error` instead, and the others are still classified."""
    model_dir = resolve_model_dir(model_dir)
    classify = tf.saved_model.load(model_dir).signatures[RAW_SIGNATURE]
    names = _class_names(model_dir, classify.structured_outputs["probabilities"].shape[-1])
    for group in _batches(image_paths, limits):
        images = [data for _, data in group if not isinstance(data, str)]
        outputs = iter(_outputs(classify, images) if images else [])
        for path, data in group:
            output = data if isinstance(data, str) else next(outputs)
            yield {"file": path, "error": output} if isinstance(output, str) else {
                "file": path, **_prediction(output, names)}


def _prediction(output: dict, names: list[str] | None) -> dict:
    probabilities = output["probabilities"].numpy().tolist()
    return {"class_name": output["class_name"].numpy().decode(),
            "class_id": int(output["class_id"]),
            "probabilities": dict(zip(names or range(len(probabilities)), probabilities))}
