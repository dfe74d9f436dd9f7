"""The report of a run: report.json, report.html with training curves, and a terminal table."""

from __future__ import annotations

import base64
import csv
import html
import json
import os
from typing import Any

from components.image_example_gen.executor import SPLIT_COUNTS_PROPERTY
from components.versioned_pusher.executor import PUSH_RECORD_FILE
from pipeline import run_history

CURVE_PHASES = {"transfer_trainer": ("frozen", "fine_tune"), "scratch_trainer": ("scratch",),
                "pretrain_trainer": ("pretrain",)}
MODEL_NAMES = {"candidate": "transfer", "baseline": "baseline"}


def _uri(runs: dict, node: str, key: str) -> str | None:
    artifacts = runs[node].outputs.get(key) if node in runs else None
    return artifacts[0].uri if artifacts else None


def _custom(artifact, name: str) -> Any:
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return getattr(value, value.WhichOneof("value"))


def read_metrics(evaluation_uri: str) -> dict[str, dict[str, Any]]:
    """Overall-slice TFMA metrics per model; per-class ones nested under `per_class`."""
    import tensorflow_model_analysis as tfma

    metrics: dict[str, dict[str, Any]] = {}
    for for_slice in tfma.load_metrics(evaluation_uri):
        if for_slice.slice_key.single_slice_keys:
            continue
        for item in for_slice.metric_keys_and_values:
            key, value = item.key, item.value
            if key.is_diff or not value.HasField("double_value"):
                continue
            model = metrics.setdefault(MODEL_NAMES.get(key.model_name, key.model_name), {})
            number = value.double_value.value
            if key.sub_key.HasField("class_id"):
                per_class = model.setdefault("per_class", {})
                per_class.setdefault(str(key.sub_key.class_id.value), {})[key.name] = number
            else:
                model[key.name] = number
    return metrics


def _describe_failure(failure) -> str:
    value = failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff:
        gain = threshold.change_threshold.absolute.value
        return (f"{failure.metric_key.name}: candidate - baseline = {value:+.4f}, "
                f"needed at least {gain:+.4f}")
    bound = threshold.value_threshold.lower_bound.value
    return f"{failure.metric_key.name}: {value:.4f}, below the minimum {bound:.4f}"


def _push_reasons(pushed_model_uri: str) -> list[str]:
    """Why the Pusher pushed or didn't, from its push record."""
    path = os.path.join(pushed_model_uri, PUSH_RECORD_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(json.load(f).get("reasons", []))


def blessing_reasons(evaluation_uri: str) -> list[str]:
    """Why TFMA's validation failed, one line per failed threshold."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    return [_describe_failure(failure)
            for per_slice in result.metric_validations_per_slice
            for failure in per_slice.failures]


def _split_counts(runs: dict, node: str) -> dict[str, int] | None:
    artifacts = runs[node].outputs.get("examples") if node in runs else None
    counts = _custom(artifacts[0], SPLIT_COUNTS_PROPERTY) if artifacts else None
    return json.loads(counts) if counts else None


def label_accounting(runs: dict) -> dict[str, Any]:
    """The labelled images each Trainer used, per split (eval steers early stopping and the
    learning rate, so its labels count), the source labels the transfer model used through
    pretraining, and the test images both target models were judged on."""
    source = _split_counts(runs, "source_example_gen")
    target = _split_counts(runs, "target_example_gen")
    labels: dict[str, Any] = {}
    if source:
        labels["pretrain"] = {"train": source["train"], "eval": source["eval"]}
    if target:
        used = {"train": target["train"], "eval": target["eval"]}
        labels["transfer"] = {**used, **(
            {"source": source["train"] + source["eval"]} if source else {})}
        labels["scratch"] = dict(used)
        labels["test"] = target["test"]
    return labels


def read_history(model_run_uri: str, phase: str) -> list[dict[str, float]]:
    path = os.path.join(model_run_uri, phase, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]


def plot_curves(histories: dict[str, list[dict[str, float]]], title: str, path: str) -> None:
    """Accuracy and loss per epoch, the phases one after the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    offset = 0
    for phase, rows in histories.items():
        epochs = [offset + i + 1 for i in range(len(rows))]
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.plot(epochs, [r.get(metric) for r in rows], label=f"{phase} train")
            ax.plot(epochs, [r.get(f"val_{metric}") for r in rows], "--", label=f"{phase} eval")
            ax.axvline(offset + 0.5, color="grey", lw=0.5)
        offset += len(rows)
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _name_classes(metrics: dict[str, dict[str, Any]], class_names: list[str]) -> None:
    for model in metrics.values():
        per_class = model.get("per_class", {})
        model["per_class"] = {class_names[int(i)] if int(i) < len(class_names) else i: v
                              for i, v in per_class.items()}


def build_report(metadata_path: str, class_names: list[str],
                 run_id: str | None = None) -> dict[str, Any]:
    """Collect one run's facts from ML Metadata and its artifacts (latest run by default)."""
    run_id = run_id or run_history.run_ids(metadata_path)[-1]
    runs = run_history.component_runs(metadata_path, run_id)
    report: dict[str, Any] = {
        "run_id": run_id,
        "component_seconds": {n: round(r.seconds, 1) for n, r in runs.items()},
        "component_states": {n: r.state for n, r in runs.items()},
        "blessed": False, "blessing_reasons": [], "pushed": False, "pushed_model_dir": None,
        "push_reasons": [], "served_version": None, "metrics": {},
        "labels": label_accounting(runs),
    }
    evaluation = _uri(runs, "evaluator", "evaluation")
    if evaluation:
        report["metrics"] = read_metrics(evaluation)
        _name_classes(report["metrics"], class_names)
        report["blessing_reasons"] = blessing_reasons(evaluation)
    blessing = runs.get("evaluator") and runs["evaluator"].outputs.get("blessing")
    if blessing:
        report["blessed"] = _custom(blessing[0], "blessed") == 1
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
        # The version the candidate had to be no worse than; "" means only itself was served.
        report["served_version"] = _custom(served[0], "served_version") or None
    report["histories"] = {
        node: {phase: read_history(uri, phase) for phase in phases}
        for node, phases in CURVE_PHASES.items()
        if (uri := _uri(runs, node, "model_run"))}
    return report


def _img(path: str) -> str:
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return f'<img alt="{html.escape(os.path.basename(path))}" src="data:image/png;base64,{data}">'


def _render_html(report: dict[str, Any], plots: dict[str, str]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(
            f"<td>{report['metrics'].get(m, {}).get(name, float('nan')):.4f}</td>"
            for m in ("transfer", "baseline")) + "</tr>"
        for name in sorted({k for m in report["metrics"].values() for k, v in m.items()
                            if isinstance(v, float)}))
    timings = "".join(f"<tr><td>{html.escape(n)}</td><td>{s:.1f} s</td>"
                      f"<td>{report['component_states'][n]}</td></tr>"
                      for n, s in report["component_seconds"].items())
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report["blessing_reasons"])
    pushes = "".join(f"<li>pusher: {html.escape(r)}</li>" for r in report.get("push_reasons", []))
    labels = "".join(f"<tr><td>{model}</td>" + "".join(
        f"<td>{report['labels'][model].get(split, '-')}</td>"
        for split in ("train", "eval", "source")) + "</tr>"
        for model in ("pretrain", "transfer", "scratch") if model in report.get("labels", {}))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>tfx-transfer report {html.escape(report['run_id'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
td,th{{padding:2px 10px;text-align:left}}</style></head><body>
<h1>Run {html.escape(report['run_id'])}</h1>
<p><b>Blessed:</b> {report['blessed']} — <b>pushed to:</b>
{html.escape(str(report['pushed_model_dir']))}</p><ul>{reasons}{pushes}</ul>
<h2>Target test split</h2><table><tr><th>metric</th><th>transfer</th><th>baseline</th></tr>
{rows}</table>
<h2>Labels used</h2><table><tr><th>model</th><th>train</th><th>eval</th>
<th>source, through pretraining</th></tr>{labels}</table>
<p>Both target models judged on {report.get('labels', {}).get('test', '-')} test images.</p>
<h2>Training curves</h2>{''.join(_img(p) for p in plots.values())}
<h2>Components</h2><table>{timings}</table></body></html>"""


def write_report(report: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Write report.json, report.html and the curve PNGs; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    plots = {}
    for node, histories in report["histories"].items():
        if any(histories.values()):
            plots[node] = os.path.join(out_dir, f"{node}_curves.png")
            plot_curves(histories, node.replace("_", " "), plots[node])
    paths = {"json": os.path.join(out_dir, "report.json"),
             "html": os.path.join(out_dir, "report.html"), **plots}
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump({**report, "plots": plots}, f, indent=2)
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write(_render_html(report, plots))
    return paths


def _label_lines(labels: dict[str, Any]) -> list[str]:
    """Labelled images per model and split, for the terminal."""
    if "transfer" not in labels:
        return []
    lines = [f"{'labels used':<18}{'train':>10}{'eval':>10}{'+source':>10}"]
    for model in ("transfer", "scratch"):
        counts = labels[model]
        lines.append(f"{model:<18}{counts['train']:>10}{counts['eval']:>10}"
                     f"{counts.get('source', '-'):>10}")
    lines.append(f"judged on {labels['test']} test images")
    return lines


def summary_table(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = [f"{'':<18}{'transfer':>10}{'baseline':>10}"]
    for name in ("accuracy", "loss", "auc", "top_3_accuracy"):
        values = [report["metrics"].get(m, {}).get(name) for m in ("transfer", "baseline")]
        if any(v is not None for v in values):
            lines.append(f"{name:<18}" + "".join(
                f"{v:>10.4f}" if v is not None else f"{'-':>10}" for v in values))
    lines += _label_lines(report.get("labels", {}))
    verdict = "blessed" if report["blessed"] else "NOT blessed"
    lines.append(f"{verdict}; pushed to {report['pushed_model_dir']}" if report["pushed"]
                 else f"{verdict}; nothing pushed")
    lines += [f"  {reason}" for reason in report["blessing_reasons"]]
    lines += [f"  pusher: {reason}" for reason in report.get("push_reasons", [])
              if not report["pushed"] and reason.startswith(("already served", "cached"))]
    return "\n".join(lines)
