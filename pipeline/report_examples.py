"""The images of a run for people to look at: a few of each target class as trained on, and
the test images the transferred model got wrong, through its own serving signature."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow as tf

from transform.features import IMAGE_KEY, LABEL_KEY

GALLERY_SIZE = 32
EXAMPLES_PER_CLASS = 6
_BATCH = 256
_MIME = {b"\x89PNG": "image/png", b"\xff\xd8": "image/jpeg", b"GIF8": "image/gif",
         b"BM": "image/bmp"}


def data_uri(image: bytes) -> str:
    """The encoded image as a data: URI the browser shows as it is."""
    mime = next((m for magic, m in _MIME.items() if image.startswith(magic)),
                "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(image).decode()}"


Row = tuple[bytes, bytes, int]  # serialized example, image bytes, label


def read_split(examples_uri: str, split: str) -> Iterator[Row]:
    """The examples of a split, in file order, read as they are needed."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
            LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        parsed = tf.io.parse_single_example(record, spec)
        yield record.numpy(), parsed[IMAGE_KEY].numpy(), int(parsed[LABEL_KEY])


def class_examples(rows: Iterable[Row], class_names: list[str],
                   per_class: int = EXAMPLES_PER_CLASS) -> dict[str, list[str]]:
    """The first `per_class` images of each class, as data URIs; reads no further."""
    found: dict[str, list[str]] = {name: [] for name in class_names}
    for _, image, label in rows:
        if len(found[class_names[label]]) < per_class:
            found[class_names[label]].append(data_uri(image))
        if all(len(images) == per_class for images in found.values()):
            break
    return found


def predict(model_dir: str, rows: list[Row]) -> list[list[float]]:
    """Class probabilities of each example through the model's serving_default signature."""
    classify = tf.saved_model.load(model_dir).signatures["serving_default"]
    probabilities = []
    for start in range(0, len(rows), _BATCH):
        batch = tf.constant([serialized for serialized, _, _ in rows[start:start + _BATCH]])
        probabilities += classify(examples=batch)["probabilities"].numpy().tolist()
    return probabilities


def misclassified(rows: list[Row], probabilities: list[list[float]],
                  class_names: list[str], cap: int = GALLERY_SIZE) -> dict[str, Any]:
    """The wrongly classified test images, most confident mistakes first (ties by position
    in the split, so the choice is deterministic), at most `cap` of them shown."""
    wrong = []
    for index, ((_, image, label), probs) in enumerate(zip(rows, probabilities)):
        predicted = max(range(len(probs)), key=probs.__getitem__)
        if predicted != label:
            wrong.append((-probs[predicted], index, image, label, predicted))
    wrong.sort(key=lambda item: item[:2])
    shown = [{"index": index, "true": class_names[label], "predicted": class_names[predicted],
              "probability": -negative, "image": data_uri(image)}
             for negative, index, image, label, predicted in wrong[:cap]]
    return {"count": len(wrong), "judged": len(rows), "shown": shown}
