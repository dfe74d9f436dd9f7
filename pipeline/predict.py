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


def unreadable(data: bytes) -> str | None:
    """Why TensorFlow can't decode these bytes as an image, or None if it can."""
    try:
        tf.io.decode_image(data, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
        # TensorFlow wraps the reason in its op's name: {{function_node ...}} why [Op:...]
        return re.sub(r"^\{\{[^}]*\}\}\s*|\s*\[Op:\w+\].*$", "", error.message.strip())
    return None


def predict_files(model_dir: str, image_paths: list[str]) -> list[dict]:
    """Class name, class id and per-class probabilities for each image file; a file that
    isn't a decodable image gets an `error` instead and the others are still classified."""
    model_dir = resolve_model_dir(model_dir)
    model = tf.saved_model.load(model_dir)
    classify = model.signatures[RAW_SIGNATURE]
    results: list[dict] = [{"file": path} for path in image_paths]
    images = []
    for result in results:
        data = tf.io.gfile.GFile(result["file"], "rb").read()
        if error := unreadable(data):
            result["error"] = f"not an image ({error})"
        else:
            images.append(data)
    if not images:
        return results
    outputs = classify(image_bytes=tf.constant(images))
    names = _class_names(model_dir)
    good = (result for result in results if "error" not in result)
    for i, result in enumerate(good):
        probabilities = outputs["probabilities"][i].numpy().tolist()
        result.update({
            "class_name": outputs["class_name"][i].numpy().decode(),
            "class_id": int(outputs["class_id"][i]),
            "probabilities": dict(zip(names or range(len(probabilities)), probabilities)),
        })
    return results
