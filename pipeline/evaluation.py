"""The Evaluator's TFMA config: transferred model (candidate) against the from-scratch baseline."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from transform.features import LABEL_KEY

PREDICTION_KEY = "probabilities"
EVAL_SPLIT = "test"
# TFMA passes a change threshold when diff >= absolute; a hair above the margin makes a tie lose.
STRICTLY_BETTER = 1e-9


def _model_spec(name: str, is_baseline: bool) -> tfma.ModelSpec:
    return tfma.ModelSpec(name=name, signature_name="serving_default", label_key=LABEL_KEY,
                          prediction_key=PREDICTION_KEY, is_baseline=is_baseline)


def _accuracy_gate(min_accuracy: float, min_gain: float) -> tfma.MetricsSpec:
    """Accuracy must reach min_accuracy and beat the baseline's by at least min_gain."""
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": min_gain}))
    return tfma.MetricsSpec(metrics=[tfma.MetricConfig(
        class_name="SparseCategoricalAccuracy", config='"name": "accuracy"', threshold=threshold)])


def _per_class_auc(n_classes: int) -> tfma.MetricsSpec:
    """The AUC of each class against the rest (class 1's AUC is the binary AUC). Per-class
    precision and recall come from the confusion matrix instead: binarized, TFMA would count
    a probability above 0.5, not the argmax decision the model makes."""
    return tfma.MetricsSpec(
        metrics=[tfma.MetricConfig(class_name="AUC")],
        binarize=tfma.BinarizationOptions(class_ids={"values": list(range(n_classes))}))


def build_eval_config(n_classes: int, min_accuracy: float, margin: float) -> tfma.EvalConfig:
    """Accuracy on the whole split gates the blessing; loss, each class's AUC against the rest,
    top-3 accuracy and the confusion matrix of the argmax decision are reported.

    Only the overall slice is computed: TFMA applies thresholds to every slice, and a tie on a
    class slice (both models at 100% recall, say) must not veto a better model.
    """
    metrics = [
        tfma.MetricConfig(class_name="SparseCategoricalCrossentropy", config='"name": "loss"'),
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
    ]
    if n_classes > 2:
        metrics.append(tfma.MetricConfig(class_name="SparseTopKCategoricalAccuracy",
                                         config='"name": "top_3_accuracy", "k": 3'))
    return tfma.EvalConfig(
        model_specs=[_model_spec("candidate", False), _model_spec("baseline", True)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[_accuracy_gate(min_accuracy, margin + STRICTLY_BETTER),
                       tfma.MetricsSpec(metrics=metrics), _per_class_auc(n_classes)])


def build_served_eval_config(tolerance: float) -> tfma.EvalConfig:
    """Candidate against the model served now: not worse by more than `tolerance`; loss and
    the example count are reported beside it."""
    reported = [tfma.MetricConfig(class_name="SparseCategoricalCrossentropy",
                                  config='"name": "loss"'),
                tfma.MetricConfig(class_name="ExampleCount")]
    return tfma.EvalConfig(
        model_specs=[_model_spec("candidate", False), _model_spec("baseline", True)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[_accuracy_gate(0.0, -tolerance), tfma.MetricsSpec(metrics=reported)])
