"""The blessing gates at their boundaries, on real TFMA runs of constructed models.

Each model is a SavedModel whose `serving_default` looks up, by an `id` feature, which class
it predicts, so it is right on exactly the test images chosen for it. With `margin: 0` the
transfer model must beat scratch strictly: a tie or a loss by one image of 1,000 is not
blessed and not pushed, a win by one is. Against the model served now, a tie is enough
(`regression_tolerance: 0` means "not worse"), a loss by one image is not.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_artifacts, standard_component_specs as specs
from tfx.utils import proto_utils

from components.versioned_pusher import executor as pusher_executor
from pipeline.evaluation import EVAL_SPLIT, build_eval_config, build_served_eval_config
from pipeline import report_metrics
from transform.features import LABEL_KEY

N_IMAGES = 1000
LABELS = np.arange(N_IMAGES) % 2
# The models under test are right on this many images; the reference model on 900.
REFERENCE_RIGHT = 900


class _Lookup(tf.Module):
    """Predicts, for the example with feature `id`, the class in row `id` of `predictions`."""

    def __init__(self, predictions: np.ndarray):
        super().__init__()
        # Confident but not certain, so the loss TFMA also computes stays finite.
        self.probabilities = tf.constant(np.eye(2, dtype=np.float32)[predictions] * 0.8 + 0.1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        ids = tf.io.parse_example(examples, {"id": tf.io.FixedLenFeature([], tf.int64)})["id"]
        return {"probabilities": tf.gather(self.probabilities, ids)}


def _model(uri: str, right: np.ndarray) -> standard_artifacts.Model:
    """A Model artifact right exactly where `right` is True."""
    module = _Lookup(np.where(right, LABELS, 1 - LABELS))
    tf.saved_model.save(module, os.path.join(uri, "Format-Serving"),
                        signatures={"serving_default": module.serve})
    model = standard_artifacts.Model()
    model.uri = uri
    return model


def _right_on(count: int, *, first: bool) -> np.ndarray:
    """Right on `count` images: the first ones or the last ones, so two models with the same
    count are right on different images."""
    right = np.zeros(N_IMAGES, bool)
    right[:count] = True
    return right if first else right[::-1].copy()


@pytest.fixture(scope="module")
def test_examples(tmp_path_factory) -> standard_artifacts.Examples:
    uri = tmp_path_factory.mktemp("examples")
    os.makedirs(uri / f"Split-{EVAL_SPLIT}")
    with tf.io.TFRecordWriter(str(uri / f"Split-{EVAL_SPLIT}" / "data.gz"), "GZIP") as writer:
        for index, label in enumerate(LABELS):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            })).SerializeToString())
    examples = standard_artifacts.Examples()
    examples.uri = str(uri)
    examples.split_names = json.dumps([EVAL_SPLIT])
    return examples


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> standard_artifacts.Model:
    """The scratch baseline, or the model served now: right on the last 900 images."""
    return _model(str(tmp_path_factory.mktemp("reference")),
                  _right_on(REFERENCE_RIGHT, first=False))


def _evaluate(tmp_path, examples, candidate, baseline,
              eval_config) -> tuple[standard_artifacts.ModelBlessing, str]:
    """One real TFX Evaluator (TFMA on Beam) run; returns its blessing and evaluation URI."""
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(tmp_path / "evaluation"), str(tmp_path / "blessing")
    evaluator_executor.Executor().Do(
        {specs.EXAMPLES_KEY: [examples], specs.MODEL_KEY: [candidate],
         specs.BASELINE_MODEL_KEY: [baseline]},
        {specs.EVALUATION_KEY: [evaluation], specs.BLESSING_KEY: [blessing]},
        {specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(eval_config),
         specs.EXAMPLE_SPLITS_KEY: json.dumps([EVAL_SPLIT])})
    return blessing, evaluation.uri


def _is_blessed(blessing: standard_artifacts.ModelBlessing) -> bool:
    return blessing.get_int_custom_property("blessed") == 1


@pytest.mark.parametrize("right, blessed", [
    (REFERENCE_RIGHT, False),      # a tie
    (REFERENCE_RIGHT - 1, False),  # loses by one image
    (REFERENCE_RIGHT + 1, True),   # wins by one image
])
def test_margin_zero_blesses_and_pushes_only_a_strict_win(
        tmp_path, test_examples, reference, right, blessed):
    candidate = _model(str(tmp_path / "candidate"), _right_on(right, first=True))
    blessing, evaluation = _evaluate(tmp_path, test_examples, candidate, reference,
                                     build_eval_config(2, min_accuracy=0.5, margin=0.0))
    assert _is_blessed(blessing) is blessed
    # What the report says of it: both thresholds, with the values TFMA judged.
    eval_config = proto_utils.proto_to_json(build_eval_config(2, min_accuracy=0.5, margin=0.0))
    names = report_metrics.MODEL_NAMES["evaluator"]
    metrics = report_metrics.read_metrics(evaluation, names)
    value, gain = report_metrics.checks(evaluation, eval_config, metrics, strict=True)
    assert value["passed"] and value["value"] == pytest.approx(right / N_IMAGES, abs=1e-6)
    assert gain["passed"] is blessed and gain["value"] == pytest.approx(
        (right - REFERENCE_RIGHT) / N_IMAGES, abs=1e-6)  # TFMA sums in float32
    assert report_metrics.describe_check(gain, "scratch") == (
        f"{'pass' if blessed else 'FAIL'}: accuracy gain over scratch "
        f"{(right - REFERENCE_RIGHT) / N_IMAGES:+.4f}, needed > +0.0000")
    # Per-class figures from the confusion matrix agree with the accuracy TFMA gated on.
    confusion = report_metrics.read_confusion(evaluation, names, 2)["transfer"]
    assert sum(map(sum, confusion)) == N_IMAGES and confusion[0][0] + confusion[1][1] == right
    table = report_metrics.per_class(confusion, ["a", "b"], metrics["transfer"]["per_class"])
    assert sum(row["recall"] * row["support"] for row in table.values()) == pytest.approx(right)
    assert 0 <= table["b"]["auc"] <= 1

    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    serving_dir = tmp_path / "serving"
    pusher_executor.Executor().Do(
        {pusher_executor.MODEL_KEY: [candidate], pusher_executor.MODEL_BLESSING_KEY: [blessing]},
        {pusher_executor.PUSHED_MODEL_KEY: [pushed]},
        {pusher_executor.SERVING_DIR_KEY: str(serving_dir),
         pusher_executor.KEEP_VERSIONS_KEY: 5})
    assert pushed.get_int_custom_property("pushed") == int(blessed)
    versions = os.listdir(serving_dir) if serving_dir.exists() else []
    assert len(versions) == int(blessed)


@pytest.mark.parametrize("right, blessed", [
    (REFERENCE_RIGHT, True),       # as good as the served model: not worse
    (REFERENCE_RIGHT - 1, False),  # one image worse
])
def test_no_regression_against_the_served_model_means_not_one_image_worse(
        tmp_path, test_examples, reference, right, blessed):
    candidate = _model(str(tmp_path / "candidate"), _right_on(right, first=True))
    blessing, _ = _evaluate(tmp_path, test_examples, candidate, reference,
                            build_served_eval_config(tolerance=0.0))
    assert _is_blessed(blessing) is blessed
