"""Classify image files with a pushed SavedModel through its raw-bytes signature."""

from __future__ import annotations

import os
import re

import tensorflow as tf

RAW_SIGNATURE = "serving_raw"


def resolve_model_dir(path: str) -> str:
    """A SavedModel dir, or a serving dir whose highest numeric version is taken."""
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(d.rstrip("/")) for d in tf.io.gfile.listdir(path) if d.rstrip("/").isdigit()]
    if not versions:
        raise FileNotFoundError(f"{path}: neither a SavedModel nor a serving dir with versions")
    return os.path.join(path, str(max(versions)))


def _class_names(model_dir: str) -> list[str] | None:
    path = os.path.join(model_dir, "assets.extra", "label_vocabulary.txt")
    if not tf.io.gfile.exists(path):
        return None
    return tf.io.gfile.GFile(path).read().splitlines()


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


def _read(path: str) -> bytes | str:
    try:
        return tf.io.gfile.GFile(path, "rb").read()
    except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as error:
        return f"cannot be read ({_reason(error)})"


def predict_files(model_dir: str, image_paths: list[str]) -> list[dict]:
    """Class name, class id and per-class probabilities for each image file, through the
    model's own decoding and checks; a file it can't classify gets an `error` instead, and the
    others are still classified."""
    model_dir = resolve_model_dir(model_dir)
    classify = tf.saved_model.load(model_dir).signatures[RAW_SIGNATURE]
    names = _class_names(model_dir)
    results: list[dict] = [{"file": path} for path in image_paths]
    readable = []
    for result in results:
        data = _read(result["file"])
        if isinstance(data, str):
            result["error"] = data
        else:
            readable.append((result, data))
    outputs = _outputs(classify, [data for _, data in readable]) if readable else []
    for (result, _), output in zip(readable, outputs):
        if isinstance(output, str):
            result["error"] = output
            continue
        probabilities = output["probabilities"].numpy().tolist()
        result.update({
            "class_name": output["class_name"].numpy().decode(),
            "class_id": int(output["class_id"]),
            "probabilities": dict(zip(names or range(len(probabilities)), probabilities)),
        })
    return results
