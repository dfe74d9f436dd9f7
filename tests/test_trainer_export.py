"""The serving export: raw PNG/JPEG bytes in, through either signature, give what the
in-training model gives on the Transform's output; TFMA can evaluate the export."""

import functools
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft

from pipeline.evaluation import build_eval_config
from tests.trainer_fixtures import pretrained_cnn, raw_example, task_a
from trainer.base_model_file import keras_model_path, load_keras_model
from transform.features import IMAGE_KEY, LABEL_VOCABULARY_FILE, TRANSFORMED_IMAGE_KEY


@pytest.fixture(scope="module")
def exported():
    """The pretrain Trainer's classifier as trained (its H5 copy, with augmentation layers)
    and as exported by run_fn."""
    export_dir = os.path.join(pretrained_cnn().uri, "Format-Serving")
    model = load_keras_model(keras_model_path(export_dir))
    return model, tft.TFTransformOutput(task_a().transform_graph.uri), export_dir


@functools.cache
def saved_model(export_dir: str):
    return tf.saved_model.load(export_dir)


def signature(export_dir: str, name: str):
    return saved_model(export_dir).signatures[name]


def transformed_eval_images() -> tuple[np.ndarray, np.ndarray]:
    """The Transform's eval-split images, and for each the index of its raw original."""
    spec = tft.TFTransformOutput(task_a().transform_graph.uri).transformed_feature_spec()
    files = glob.glob(os.path.join(task_a().examples.uri, "Split-eval", "*"))
    dataset = tf.data.TFRecordDataset(files, "GZIP").batch(1000).map(
        lambda records: tf.io.parse_example(records, spec))
    images = next(iter(dataset))[TRANSFORMED_IMAGE_KEY].numpy()
    # The Beam-written file need not keep input order: pair by pixels (28x28 is not resized).
    originals = task_a().eval_pixels.reshape(len(task_a().eval_pixels), -1) / 255.0
    distance = np.abs(images.reshape(len(images), 1, -1) - originals[np.newaxis]).max(axis=-1)
    assert np.all(distance.min(axis=1) < 1e-6)
    return images, distance.argmin(axis=1)


def jpeg(pixels: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(pixels[..., np.newaxis], quality=90).numpy()


def test_serving_default_matches_the_model_on_transformed_inputs(exported):
    model, _, export_dir = exported
    images, originals = transformed_eval_images()
    examples = [raw_example(task_a().eval_png[i], int(task_a().eval_labels[i]),
                            task_a().label_names[task_a().eval_labels[i]]) for i in originals]
    served = signature(export_dir, "serving_default")(examples=tf.constant(examples))
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(served["class_id"].numpy(), expected.argmax(axis=1))


@pytest.mark.parametrize("encode", [lambda p: task_a().eval_png[p], lambda p: jpeg(
    task_a().eval_pixels[p])], ids=["png", "jpeg"])
def test_both_signatures_match_the_model_on_raw_bytes(exported, encode):
    model, tft_output, export_dir = exported
    images = [encode(i) for i in range(len(task_a().eval_labels))]
    transformed = tft_output.transform_raw_features({IMAGE_KEY: tf.constant(images)[:, None]})
    expected = model.predict(transformed[TRANSFORMED_IMAGE_KEY], verbose=0)
    raw = signature(export_dir, "serving_raw")(image_bytes=tf.constant(images))
    examples = [raw_example(image, 0, "") for image in images]
    default = signature(export_dir, "serving_default")(examples=tf.constant(examples))
    for served in (raw, default):
        np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)


def test_outputs_and_label_vocabulary(exported):
    _, _, export_dir = exported
    outputs = signature(export_dir, "serving_raw")(image_bytes=tf.constant(task_a().eval_png))
    n = len(task_a().eval_png)
    assert {key: (value.dtype, tuple(value.shape)) for key, value in outputs.items()} == {
        "probabilities": (tf.float32, (n, 8)), "class_id": (tf.int64, (n,)),
        "class_name": (tf.string, (n,))}
    names = np.array([name.encode() for name in task_a().label_names])
    np.testing.assert_array_equal(outputs["class_name"].numpy(),
                                  names[outputs["class_id"].numpy()])
    with open(os.path.join(export_dir, "assets.extra", LABEL_VOCABULARY_FILE)) as f:
        assert f.read().splitlines() == task_a().label_names


def test_tfma_evaluates_the_export_on_raw_examples(exported, tmp_path):
    """The pipeline's own EvalConfig (candidate vs baseline, here the same export)."""
    _, _, export_dir = exported
    eval_config = build_eval_config(n_classes=8, min_accuracy=0.0, margin=-1.0)
    models = [tfma.default_eval_shared_model(export_dir, eval_config=eval_config,
                                             model_name=spec.name)
              for spec in eval_config.model_specs]
    tfma.run_model_analysis(eval_shared_model=models, eval_config=eval_config,
                            data_location=task_a().raw_eval_path, output_path=str(tmp_path))
    result = tfma.load_eval_result(str(tmp_path), model_name="candidate")
    overall = dict(result.slicing_metrics)[()][""][""]
    served = signature(export_dir, "serving_raw")(image_bytes=tf.constant(task_a().eval_png))
    served_accuracy = np.mean(served["class_id"].numpy() == task_a().eval_labels)
    assert overall["accuracy"]["doubleValue"] == pytest.approx(served_accuracy)
    assert overall["example_count"]["doubleValue"] == len(task_a().eval_png)
