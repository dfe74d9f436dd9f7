"""Classify image files with a pushed SavedModel through its raw-bytes signature."""

from __future__ import annotations

import os

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


def predict_files(model_dir: str, image_paths: list[str]) -> list[dict]:
    """Class name, class id and per-class probabilities for each image file."""
    model_dir = resolve_model_dir(model_dir)
    model = tf.saved_model.load(model_dir)
    classify = model.signatures[RAW_SIGNATURE]
    images = [tf.io.gfile.GFile(p, "rb").read() for p in image_paths]
    outputs = classify(image_bytes=tf.constant(images))
    names = _class_names(model_dir)
    results = []
    for i, path in enumerate(image_paths):
        probabilities = outputs["probabilities"][i].numpy().tolist()
        results.append({
            "file": path,
            "class_name": outputs["class_name"][i].numpy().decode(),
            "class_id": int(outputs["class_id"][i]),
            "probabilities": dict(zip(names or range(len(probabilities)), probabilities)),
        })
    return results
