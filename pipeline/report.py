"""The report of a run: report.json, a self-contained report.html and a terminal summary.

Every fact comes from what the run recorded: ML Metadata (components, timings, their
exec_properties), the artifacts (split counts, skipped inputs, histories) and TFMA's output.
The keys of report.json are listed in the README ("The run report").
"""

from __future__ import annotations

import base64
import csv
import json
import os
import textwrap
from typing import Any

from tfx.utils import path_utils

from components.image_example_gen.custom_config import from_exec_properties
from components.image_example_gen.executor import SKIPPED_IMAGES_FILE, SPLIT_COUNTS_PROPERTY
from components.versioned_pusher.executor import PUSH_RECORD_FILE
from pipeline import report_examples, report_metrics, report_plots, run_history
from pipeline.progress import shown

CURVE_PHASES = {"pretrain_trainer": ("pretrain",), "transfer_trainer": ("frozen", "fine_tune"),
                "scratch_trainer": ("scratch",)}
EVALUATORS = {"evaluator": "scratch", "served_evaluator": "served"}
SKIPPED_SHOWN = 10
WIDTH = 80


def _uri(runs: dict, node: str, key: str) -> str | None:
    artifacts = runs[node].outputs.get(key) if node in runs else None
    return artifacts[0].uri if artifacts else None


def _custom(artifact, name: str) -> Any:
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return getattr(value, value.WhichOneof("value"))


def _push_reasons(pushed_model_uri: str) -> list[str]:
    """Why the Pusher pushed or didn't, from its push record."""
    path = os.path.join(pushed_model_uri, PUSH_RECORD_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(json.load(f).get("reasons", []))


def _split_counts(runs: dict, node: str) -> dict[str, int] | None:
    artifacts = runs[node].outputs.get("examples") if node in runs else None
    counts = _custom(artifacts[0], SPLIT_COUNTS_PROPERTY) if artifacts else None
    return json.loads(counts) if counts else None


def pretraining_method(runs: dict) -> str:
    """What the pretrain Trainer learnt from: its config's, else (it didn't run) 'supervised'
    unless the source ExampleGen dropped the labels ('without labels')."""
    trainer, example_gen = runs.get("pretrain_trainer"), runs.get("source_example_gen")
    if trainer and trainer.properties.get("custom_config"):
        return json.loads(trainer.properties["custom_config"]).get("pretraining", "supervised")
    if example_gen and example_gen.properties.get("custom_config"):
        return "supervised" if from_exec_properties(
            example_gen.properties).dataset.labelled else "without labels"
    return "supervised"


def label_accounting(runs: dict) -> dict[str, Any]:
    """The labelled images each Trainer used, per split (eval steers early stopping and the
    learning rate, so its labels count), the source labels the transfer model used through
    pretraining, and the test images both target models were judged on. `pretrain.images`
    is what the pretraining read, labelled or not."""
    source = _split_counts(runs, "source_example_gen")
    target = _split_counts(runs, "target_example_gen")
    labels: dict[str, Any] = {}
    if source:
        read = {"train": source["train"], "eval": source["eval"]}
        labelled = pretraining_method(runs) == "supervised"
        labels["pretrain"] = {**(read if labelled else {"train": 0, "eval": 0}),
                              "images": read["train"] + read["eval"]}
    if target:
        used = {"train": target["train"], "eval": target["eval"]}
        pretrain = labels.get("pretrain")
        labels["transfer"] = {**used, **(
            {"source": pretrain["train"] + pretrain["eval"]} if pretrain else {})}
        labels["scratch"] = dict(used)
        labels["test"] = target["test"]
    return labels


def skipped_inputs(runs: dict) -> dict[str, dict[str, Any]]:
    """Per dataset, how many inputs `on_bad_image: skip` left out, and the first of them."""
    skipped = {}
    for dataset in ("source", "target"):
        uri = _uri(runs, f"{dataset}_example_gen", "examples")
        path = uri and os.path.join(uri, SKIPPED_IMAGES_FILE)
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                entries = json.load(f)
            skipped[dataset] = {"count": len(entries), "first": entries[:SKIPPED_SHOWN]}
    return skipped


def config_summary(runs: dict) -> dict[str, Any]:
    """The datasets and the transfer model's settings as this run's components got them."""
    summary: dict[str, Any] = {}
    for dataset in ("source", "target"):
        run = runs.get(f"{dataset}_example_gen")
        if run and run.properties.get("custom_config"):
            options = from_exec_properties(run.properties)
            summary[dataset] = {"classes": options.label_names, **options.dataset.model_dump(
                mode="json", include={"path", "format", "label_budget", "eval_label_budget",
                                      "on_bad_image", "labelled", "beyond_label_budget"})}
    if "source" in summary:
        summary["pretraining"] = pretraining_method(runs)
    trainer = runs.get("transfer_trainer")
    if trainer and trainer.properties.get("custom_config"):
        config = json.loads(trainer.properties["custom_config"])
        training = config["training"]
        summary["model"] = config["model"]
        summary["phases"] = {phase: training[phase] for phase in ("frozen", "fine_tune")}
        summary["training"] = {key: training[key] for key in ("batch_size", "optimizer",
                                                              "augmentation")}
        summary["seed"] = config["seed"]
    return summary


def timeline(runs: dict) -> list[dict[str, Any]]:
    """Each component's start (seconds after the first) and duration, in start order."""
    first = min((run.started for run in runs.values()), default=0.0)
    return [{"component": run.node_id, "start": round(run.started - first, 1),
             "seconds": round(run.seconds, 1), "state": run.state}
            for run in sorted(runs.values(), key=lambda run: run.started)]


def read_history(model_run_uri: str, phase: str) -> list[dict[str, float]]:
    path = os.path.join(model_run_uri, phase, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]


def _evaluations(runs: dict, class_names: list[str]) -> tuple[dict, dict, dict]:
    """(metrics by model, confusion matrices by model, each Evaluator's decision)."""
    metrics: dict[str, dict[str, Any]] = {}
    confusion: dict[str, list[list[int]]] = {}
    evaluators: dict[str, dict[str, Any]] = {}
    for node, baseline in EVALUATORS.items():
        uri = _uri(runs, node, "evaluation")
        if not uri or not os.path.isdir(uri):
            continue
        names = report_metrics.MODEL_NAMES[node]
        found = report_metrics.read_metrics(uri, names)
        checks = report_metrics.checks(uri, runs[node].properties["eval_config"], found,
                                       strict=node == "evaluator")
        blessing = runs[node].outputs.get("blessing")
        evaluators[node] = {"against": baseline, "checks": checks,
                            "blessed": bool(blessing) and _custom(blessing[0], "blessed") == 1}
        for model, values in found.items():
            values.pop("diff", None)
            metrics.setdefault(model, {}).update(
                {k: v for k, v in values.items() if k != "per_class"})
        for model, counts in report_metrics.read_confusion(uri, names, len(class_names)).items():
            confusion.setdefault(model, counts)
            metrics[model]["per_class"] = report_metrics.per_class(
                counts, class_names, found.get(model, {}).get("per_class"))
    return metrics, confusion, evaluators


def _examples(runs: dict, class_names: list[str]) -> dict[str, Any]:
    """Images of each class from the train split, and the transfer model's mistakes on the
    test split (what the Evaluators judged)."""
    examples_uri = _uri(runs, "target_example_gen", "examples")
    model_uri = _uri(runs, "transfer_trainer", "model")
    if not examples_uri or not model_uri or not os.path.isdir(model_uri):
        return {}
    test = list(report_examples.read_split(examples_uri, "test"))
    probabilities = report_examples.predict(path_utils.serving_model_path(model_uri), test)
    return {"classes": report_examples.class_examples(
                report_examples.read_split(examples_uri, "train"), class_names),
            "misclassified": report_examples.misclassified(test, probabilities, class_names)}


def decide(report: dict[str, Any], runs: dict) -> None:
    """Whether both Evaluators blessed, what the Pusher did, and why."""
    evaluators = report["evaluators"]
    report["blessed"] = len(evaluators) == len(EVALUATORS) and all(
        e["blessed"] for e in evaluators.values())
    report["blessing_reasons"] = [
        f"{node}: did not finish ({runs[node].state if node in runs else 'did not run'})"
        for node in EVALUATORS if node not in evaluators] + [
        f"vs {e['against']}: {report_metrics.describe_check(check, e['against'])}"
        for e in evaluators.values() for check in e["checks"] if not check["passed"]]
    pushed = runs.get("pusher") and runs["pusher"].outputs.get("pushed_model")
    if pushed and runs["pusher"].state == "cached":
        # An earlier run made this decision for the same inputs; this one pushed nothing.
        report["push_reasons"] = ["cached: an earlier run decided for these same inputs "
                                  f"({_custom(pushed[0], 'pushed_destination') or 'no push'})"]
    elif pushed:
        report["pushed"] = _custom(pushed[0], "pushed") == 1
        report["pushed_model_dir"] = _custom(pushed[0], "pushed_destination") or None
        report["push_reasons"] = _push_reasons(pushed[0].uri)
    served = runs.get("served_model") and runs["served_model"].outputs.get("model")
    if served:
        # The version the candidate had to be no worse than; "" means it was compared with
        # itself, because nothing was served or because it is what is served.
        report["served_version"] = _custom(served[0], "served_version") or None
        state = str(runs["served_model"].properties.get("serving_state") or "")
        report["served_before"] = state.split("@")[0] or None
    if not report["served_before"]:
        report["metrics"].pop("served", None)  # nothing served: the candidate against itself


def _logs(runs: dict, run_log: str | None) -> dict[str, Any]:
    dirs = {node.removesuffix("_trainer"): uri for node in CURVE_PHASES
            if (uri := _uri(runs, node, "model_run"))}
    return {"run_log": run_log, "tensorboard": dirs,
            "tensorboard_command": "tensorboard --logdir_spec " + ",".join(
                f"{name}:{uri}" for name, uri in dirs.items()) if dirs else None}


def build_report(metadata_path: str, class_names: list[str], run_id: str | None = None,
                 run_log: str | None = None, images: bool = True) -> dict[str, Any]:
    """Collect one run's facts (the latest run by default); `images: False` skips the
    examples and the gallery, which load the transfer model to classify the test split."""
    run_id = run_id or run_history.run_ids(metadata_path)[-1]
    runs = run_history.component_runs(metadata_path, run_id)
    metrics, confusion, evaluators = _evaluations(runs, class_names)
    report: dict[str, Any] = {
        "run_id": run_id, "classes": class_names,
        "blessed": False, "blessing_reasons": [], "evaluators": evaluators,
        "pushed": False, "pushed_model_dir": None, "push_reasons": [], "served_version": None,
        "served_before": None,
        "metrics": metrics, "confusion": confusion, "labels": label_accounting(runs),
        "skipped": skipped_inputs(runs), "config": config_summary(runs),
        "timeline": timeline(runs),
        "component_seconds": {n: round(r.seconds, 1) for n, r in runs.items()},
        "component_states": {n: r.state for n, r in runs.items()},
        "histories": {node: {phase: read_history(uri, phase) for phase in phases}
                      for node, phases in CURVE_PHASES.items()
                      if (uri := _uri(runs, node, "model_run"))},
        "logs": _logs(runs, run_log),
        "examples": _examples(runs, class_names) if images else {},
    }
    decide(report, runs)
    return report


def _plots(report: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Draw every figure of the report into out_dir; their paths by name."""
    plots = {}
    for node, histories in report["histories"].items():
        if any(histories.values()):
            plots[f"{node}_curves"] = os.path.join(out_dir, f"{node}_curves.png")
            report_plots.plot_curves(histories, node.replace("_", " "),
                                     plots[f"{node}_curves"])
    for model, counts in report["confusion"].items():
        plots[f"confusion_{model}"] = os.path.join(out_dir, f"confusion_{model}.png")
        report_plots.plot_confusion(counts, report["classes"], f"{model}: test split",
                                    plots[f"confusion_{model}"])
    if report["timeline"]:
        plots["timeline"] = os.path.join(out_dir, "timeline.png")
        report_plots.plot_timeline(report["timeline"], plots["timeline"])
    return plots


def _inline(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def render_html(report: dict[str, Any], plots: dict[str, str]) -> str:
    """The page, from the Jinja2 template beside this module, every image inlined."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        report=report, plots={name: _inline(path) for name, path in plots.items()},
        describe=report_metrics.describe_check, served_before=served_before(report))


def _json_facts(report: dict[str, Any], plots: dict[str, str]) -> dict[str, Any]:
    """report.json: everything but the images' pixels, which live in report.html."""
    examples = report["examples"]
    mistakes = examples.get("misclassified")
    return {**report, "plots": plots, "examples": mistakes and {"misclassified": {
        **mistakes, "shown": [{k: v for k, v in item.items() if k != "image"}
                              for item in mistakes["shown"]]}}}


def _keep_run_log(report: dict[str, Any], earlier: str) -> None:
    """Only `run` knows its log file; a re-rendered report keeps what the run's report said.
    The rest of the report comes from ML Metadata, so a damaged earlier file costs only this
    path."""
    if report["logs"]["run_log"] is not None:
        return
    try:
        with open(earlier, encoding="utf-8") as f:
            run_log = json.load(f)["logs"]["run_log"]
    except (OSError, ValueError, KeyError, TypeError):  # missing, truncated or not ours
        return
    if isinstance(run_log, str):
        report["logs"]["run_log"] = run_log


def write_atomically(path: str, text: str) -> None:
    """Whole or not at all: a kill or a full disk mid-write leaves the earlier file."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


def write_report(report: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Write report.json, report.html and the figures' PNGs, each atomically; return their
    paths."""
    os.makedirs(out_dir, exist_ok=True)
    _keep_run_log(report, os.path.join(out_dir, "report.json"))
    plots = _plots(report, out_dir)
    paths = {"json": os.path.join(out_dir, "report.json"),
             "html": os.path.join(out_dir, "report.html"), **plots}
    write_atomically(paths["json"], json.dumps(_json_facts(report, plots), indent=2))
    write_atomically(paths["html"], render_html(report, plots))
    return paths


def _metric_lines(metrics: dict[str, dict[str, Any]]) -> list[str]:
    models = [m for m in ("transfer", "scratch", "served") if m in metrics]
    lines = [f"{'test split':<20}" + "".join(f"{m:>10}" for m in models)]
    for name in ("accuracy", "loss", "top_3_accuracy"):
        values = [metrics[m].get(name) for m in models]
        if any(v is not None for v in values):
            lines.append(f"{name:<20}" + "".join(
                f"{v:>10.4f}" if v is not None else f"{'-':>10}" for v in values))
    return lines


def _label_lines(labels: dict[str, Any]) -> list[str]:
    """Labelled images per model and split, for the terminal."""
    if "transfer" not in labels:
        return []
    lines = [f"{'labels used':<20}{'train':>10}{'eval':>10}{'+source':>10}"]
    for model in ("transfer", "scratch"):
        counts = labels[model]
        lines.append(f"{model:<20}{counts['train']:>10}{counts['eval']:>10}"
                     f"{counts.get('source', '-'):>10}")
    return lines


def _wrapped(text: str, indent: str = "") -> list[str]:
    """Wrapped at WIDTH; a path longer than a line stays whole."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False)


def _decision_lines(report: dict[str, Any]) -> list[str]:
    verdict = "blessed" if report["blessed"] else "NOT blessed"
    lines = [f"{verdict}; pushed to" if report["pushed"] else f"{verdict}; nothing pushed"]
    if report["pushed"]:
        lines.append(f"  {report['pushed_model_dir']}")
    for evaluator in report["evaluators"].values():
        lines += [f"  vs {evaluator['against']}: "
                  f"{report_metrics.describe_check(check, evaluator['against'])}"
                  for check in evaluator["checks"]]
    lines += [f"  {reason}" for reason in report["blessing_reasons"]
              if not reason.startswith("vs ")]  # an Evaluator that did not finish
    if "served_evaluator" in report["evaluators"]:
        lines.append(f"  {served_before(report)}")
    for reason in report["push_reasons"]:
        if not report["pushed"] and reason.startswith(("already served", "cached")):
            lines += _wrapped(f"pusher: {reason}", "  ")
    return lines


def served_before(report: dict[str, Any]) -> str:
    """What was served when the run started, in words."""
    if not report["served_before"]:
        return "served before: nothing (the transfer model was judged against itself)"
    if not report["served_version"]:
        return f"served before: v{report['served_before']}, this same transfer model"
    return f"served before: v{report['served_before']}"


def _skipped_lines(skipped: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for dataset, found in skipped.items():
        if found["count"]:
            first = found["first"][0]
            lines += _wrapped(f"skipped {found['count']} {dataset} input(s), first "
                              f"{shown(first['path'])}: {shown(first['reason'])}")
    return lines


def summary_table(report: dict[str, Any]) -> str:
    """The run in a few lines of at most 80 columns, for the terminal."""
    lines = _metric_lines(report["metrics"]) + _label_lines(report["labels"])
    mistakes = report["examples"].get("misclassified")
    if "test" in report["labels"]:
        lines.append(f"judged on {report['labels']['test']} test images" + (
            f"; transfer got {mistakes['count']} wrong" if mistakes else ""))
    return "\n".join(lines + _decision_lines(report) + _skipped_lines(report["skipped"]))
