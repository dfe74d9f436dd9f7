"""What the Evaluators measured and decided, read from their TFMA output.

Per-class precision and recall come from TFMA's multi-class confusion matrix, which counts
the argmax decision the model makes, so they agree with the accuracy; each class's AUC is
TFMA's one-vs-rest AUC over that class's probability.
"""

from __future__ import annotations

import json
from typing import Any

import tensorflow_model_analysis as tfma
from google.protobuf import json_format

from pipeline.evaluation import STRICTLY_BETTER

# The Evaluators' model names in what this report calls them, per Evaluator.
MODEL_NAMES = {"evaluator": {"candidate": "transfer", "baseline": "scratch"},
               "served_evaluator": {"candidate": "transfer", "baseline": "served"}}
CONFUSION_PLOT = "multi_class_confusion_matrix_plot"


def read_metrics(evaluation_uri: str, names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Overall-slice metrics per model (named by `names`), per-class ones under `per_class`
    by class id, and candidate − baseline differences under `diff`."""
    metrics: dict[str, dict[str, Any]] = {}
    for for_slice in tfma.load_metrics(evaluation_uri):
        if for_slice.slice_key.single_slice_keys:
            continue
        for item in for_slice.metric_keys_and_values:
            key, value = item.key, item.value
            if not value.HasField("double_value"):
                continue
            model = metrics.setdefault(names.get(key.model_name, key.model_name), {})
            if key.is_diff:
                model = model.setdefault("diff", {})
            number = value.double_value.value
            if key.sub_key.HasField("class_id"):
                per_class = model.setdefault("per_class", {})
                per_class.setdefault(key.sub_key.class_id.value, {})[key.name] = number
            else:
                model[key.name] = number
    return metrics


def read_confusion(evaluation_uri: str, names: dict[str, str],
                   n_classes: int) -> dict[str, list[list[int]]]:
    """Per model, counts[actual][predicted] of the argmax decision on the test split."""
    matrices: dict[str, list[list[int]]] = {}
    for for_slice in tfma.load_plots(evaluation_uri):
        if for_slice.slice_key.single_slice_keys:
            continue
        for item in for_slice.plot_keys_and_values:
            if item.key.name != CONFUSION_PLOT:
                continue
            counts = [[0] * n_classes for _ in range(n_classes)]
            at_thresholds = item.value.multi_class_confusion_matrix_at_thresholds
            for entry in at_thresholds.matrices[0].entries:
                counts[entry.actual_class_id][entry.predicted_class_id] += round(
                    entry.num_weighted_examples)
            matrices[names.get(item.key.model_name, item.key.model_name)] = counts
    return matrices


def per_class(counts: list[list[int]], class_names: list[str],
              auc: dict[int, dict[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """Precision, recall and support of each class from a confusion matrix, plus its
    one-vs-rest AUC where TFMA computed it."""
    table = {}
    for i, name in enumerate(class_names):
        predicted = sum(row[i] for row in counts)
        support = sum(counts[i])
        row = {"precision": counts[i][i] / predicted if predicted else 0.0,
               "recall": counts[i][i] / support if support else 0.0, "support": support}
        if auc and "auc" in auc.get(i, {}):
            row["auc"] = auc[i]["auc"]
        table[name] = row
    return table


def _rules(eval_config: tfma.EvalConfig) -> list[dict[str, Any]]:
    """Each threshold of the config as {metric, kind, bound}."""
    rules = []
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            name = json.loads("{" + metric.config + "}").get("name", metric.class_name)
            threshold = metric.threshold
            if threshold.HasField("value_threshold"):
                rules.append({"metric": name, "kind": "value",
                              "bound": threshold.value_threshold.lower_bound.value})
            if threshold.HasField("change_threshold"):
                rules.append({"metric": name, "kind": "change",
                              "bound": threshold.change_threshold.absolute.value})
    return rules


def _failed(evaluation_uri: str) -> set[tuple[str, bool]]:
    result = tfma.load_validation_result(evaluation_uri)
    return {(failure.metric_key.name, failure.metric_key.is_diff)
            for per_slice in result.metric_validations_per_slice
            for failure in per_slice.failures}


def checks(evaluation_uri: str, eval_config_json: str, metrics: dict[str, dict[str, Any]],
           strict: bool) -> list[dict[str, Any]]:
    """Every threshold the Evaluator applied: the value it judged, the bound, and whether
    TFMA's validation passed it. A change threshold passes when the difference reaches the
    bound; `strict`: its bound is a margin plus STRICTLY_BETTER, so a tie fails."""
    config = json_format.Parse(eval_config_json, tfma.EvalConfig())
    failed = _failed(evaluation_uri)
    candidate = metrics.get("transfer", {})
    found = []
    for rule in _rules(config):
        is_change = rule["kind"] == "change"
        value = (candidate.get("diff", {}) if is_change else candidate).get(rule["metric"])
        found.append({**rule, "value": value, "strict": is_change and strict,
                      "passed": (rule["metric"], is_change) not in failed})
    return found


def describe_check(check: dict[str, Any], baseline: str) -> str:
    """One line: pass or FAIL, the value judged and the bound it had to reach."""
    mark = "pass" if check["passed"] else "FAIL"
    if check["kind"] == "change":
        value = "n/a" if check["value"] is None else f"{check['value']:+.4f}"
        needed = (f"> {check['bound'] - STRICTLY_BETTER + 0.0:+.4f}" if check["strict"]
                  else f">= {check['bound'] + 0.0:+.4f}")
        return f"{mark}: {check['metric']} gain over {baseline} {value}, needed {needed}"
    value = "n/a" if check["value"] is None else f"{check['value']:.4f}"
    return f"{mark}: {check['metric']} {value}, needed >= {check['bound']:.4f}"
