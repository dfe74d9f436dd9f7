"""The serving export: the Transform graph and the classifier in one SavedModel.

Signatures, both returning {'probabilities': float32 [B, n], 'class_id': int64 [B],
'class_name': string [B]}:

- `serving_default(examples)`: serialized tf.Examples holding the raw `image` bytes, what
  TFMA's Evaluator and tf.Example clients send. Other features (label, ...) are ignored.
- `serving_raw(image_bytes)`: encoded PNG/JPEG/BMP/GIF bytes, what a REST client sends.

Class names are constants in the graph, and `assets.extra/label_vocabulary.txt` lists them
one a line in class-id order. A pretraining without labels exports its encoder the same
way, both signatures returning {'embedding': float32 [B, d]}: the base's features.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from transform.features import (IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY, LABEL_VOCABULARY_FILE,
                                TRANSFORMED_IMAGE_KEY)

Outputs = dict[str, tf.Tensor]
# tf.functions with an input signature, not their concrete functions: those can't be saved
# when the model's variables are distributed (MultiWorkerMirroredStrategy).
Signatures = dict[str, tf.types.experimental.PolymorphicFunction]


def predictions(probabilities: tf.Tensor, label_names: Sequence[str]) -> Outputs:
    """The signature outputs for a batch of class probabilities."""
    class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    return {"probabilities": tf.cast(probabilities, tf.float32), "class_id": class_id,
            "class_name": tf.gather(tf.constant(list(label_names)), class_id)}


def serving_functions(model: keras.Model, tft_output: tft.TFTransformOutput,
                      respond: Callable[[tf.Tensor], Outputs]) -> Signatures:
    """`serving_default` and `serving_raw`, both through the model's attached Transform
    layer, then `respond` to the transformed images."""
    raw_spec = tft_output.raw_feature_spec()
    image_spec = raw_spec[IMAGE_KEY]
    # Serving requests carry no label: the Transform graph prunes what depends on it.
    example_spec = {key: spec for key, spec in raw_spec.items()
                    if key not in (LABEL_KEY, LABEL_NAME_KEY)}

    def classify(raw_features: dict[str, tf.Tensor]) -> Outputs:
        return respond(model.tft_layer(raw_features)[TRANSFORMED_IMAGE_KEY])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples: tf.Tensor) -> Outputs:
        return classify(tf.io.parse_example(examples, example_spec))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(image_bytes: tf.Tensor) -> Outputs:
        # Shaped like a parsed raw feature: [B] or, for the usual FixedLen [1], [B, 1].
        images = tf.reshape(image_bytes, [-1, *image_spec.shape])
        return classify({IMAGE_KEY: images})

    return {"serving_default": serve_examples, "serving_raw": serve_image_bytes}


def write_label_vocabulary(export_dir: str, label_names: Sequence[str]) -> None:
    """assets.extra/label_vocabulary.txt: the class names, one a line, in class-id order."""
    extra = os.path.join(export_dir, "assets.extra")
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, LABEL_VOCABULARY_FILE), "w") as f:
        f.write("".join(f"{name}\n" for name in label_names))


def _save(model: keras.Model, tft_output: tft.TFTransformOutput, export_dir: str,
          respond: Callable[[tf.Tensor], Outputs]) -> None:
    # An attribute of the model, so the SavedModel tracks (and ships) the Transform graph.
    model.tft_layer = tft_output.transform_features_layer()
    model.save(export_dir, save_format="tf", include_optimizer=False,
               signatures=serving_functions(model, tft_output, respond))


def export_serving_model(model: keras.Model, tft_output: tft.TFTransformOutput,
                         label_names: Sequence[str], export_dir: str) -> None:
    """Save the classifier `model` with the Transform graph and both signatures."""
    _save(model, tft_output, export_dir, lambda images: predictions(
        model(images, training=False), label_names))
    write_label_vocabulary(export_dir, label_names)


def export_encoder(base: keras.Model, tft_output: tft.TFTransformOutput,
                   export_dir: str) -> None:
    """Save the base of a label-free pretraining: both signatures return its 'embedding'."""
    _save(base, tft_output, export_dir, lambda images: {
        "embedding": tf.cast(base(images, training=False), tf.float32)})
