"""Markdown tables and the learning-curve plot from the JSON files the benchmarks wrote.

    .venv/bin/python bench/summarize.py --results bench/results --plot docs/learning_curve.png

Prints one section per results file found; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def pct(mean_std: dict) -> str:
    return f"{100 * mean_std['mean']:.2f} ± {100 * mean_std['std']:.2f}"


def ratio(value: float | None) -> str:
    return "∞ (no transfer error)" if value is None else f"{value:.1f}"


def pipeline_vs_plain(results: dict) -> str:
    """Per-seed rows and the summary of bench/pipeline_vs_plain.py."""
    rows = ["| seed | pipeline transfer | pipeline scratch | error ratio | plain transfer | "
            "plain scratch | pipeline s | plain s | load |",
            "|---|---|---|---|---|---|---|---|---|"]
    for seed, entry in results["seeds"].items():
        p, q = entry["pipeline"], entry["plain"]
        transfer_error = 1 - p["transfer_accuracy"]
        err = (1 - p["scratch_accuracy"]) / transfer_error if transfer_error > 0 else None
        rows.append(f"| {seed} | {100 * p['transfer_accuracy']:.2f} | "
                    f"{100 * p['scratch_accuracy']:.2f} | {ratio(err)} | "
                    f"{100 * q['transfer_accuracy']:.2f} | {100 * q['scratch_accuracy']:.2f} | "
                    f"{p['seconds']:.0f} | {q['seconds']:.0f} | "
                    f"{entry.get('load_average_1min', float('nan')):.1f} |")
    s = results["summary"]
    rows += ["", f"- pipeline: transfer {pct(s['pipeline']['transfer'])} %, scratch "
             f"{pct(s['pipeline']['scratch'])} %",
             f"- plain Keras: transfer {pct(s['plain']['transfer'])} %, scratch "
             f"{pct(s['plain']['scratch'])} %",
             f"- wall-clock pipeline / plain: median {s['median_time_ratio']:.2f} "
             f"(per seed {', '.join(f'{r:.2f}' for r in s['time_ratios'])})",
             "- pipeline median seconds per component: " + ", ".join(
                 f"{name} {sec:.0f}" for name, sec in sorted(
                     s["median_component_seconds"].items(), key=lambda kv: -kv[1]) if sec >= 1)]
    return "\n".join(rows)


def plain_runs(results: dict) -> str:
    """Rows per (budget, unfreeze) of bench/plain_keras_reference.py."""
    rows = ["| labels | unfreeze | transfer % | scratch % | error ratio (of means) |",
            "|---|---|---|---|---|"]
    for entry in results["runs"].values():
        s = entry["summary"]
        rows.append(f"| {entry['budget']} | {entry['unfreeze']} | {pct(s['transfer'])} | "
                    f"{pct(s['scratch'])} | {ratio(s['error_ratio'])} |")
    return "\n".join(rows)


def curve(results: dict) -> dict[int, dict[str, list[float]]]:
    """Test accuracies per label budget and model over the seeds of pipeline_vs_plain.py."""
    points: dict[int, dict[str, list[float]]] = {}
    for entry in results["seeds"].values():
        for run in entry["plain"]["runs"].values():
            if run["unfreeze"] == "all":
                point = points.setdefault(run["budget"], {"transfer": [], "scratch": []})
                for record in run["seeds"].values():
                    for kind in point:
                        point[kind].append(100 * record[f"{kind}_accuracy"])
    return dict(sorted(points.items()))


def curve_table(points: dict[int, dict[str, list[float]]]) -> str:
    rows = ["| labels | transfer % | scratch % | seeds | transfer wins |", "|---|---|---|---|---|"]
    for budget, point in points.items():
        wins = sum(t > s for t, s in zip(point["transfer"], point["scratch"]))
        rows.append(f"| {budget} | {np.mean(point['transfer']):.2f} ± "
                    f"{np.std(point['transfer']):.2f} | {np.mean(point['scratch']):.2f} ± "
                    f"{np.std(point['scratch']):.2f} | {len(point['transfer'])} | {wins} |")
    return "\n".join(rows)


def plot_curve(points: dict[int, dict[str, list[float]]], path: str) -> None:
    """Test accuracy vs labelled target images, transfer and scratch, std error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(points)
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, style in (("transfer", "o-"), ("scratch", "s--")):
        ax.errorbar(budgets, [np.mean(points[b][kind]) for b in budgets],
                    yerr=[np.std(points[b][kind]) for b in budgets], fmt=style, capsize=3,
                    label=kind)
    ax.set_xscale("log")
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("labelled target images (sandal vs shirt)")
    ax.set_ylabel("test accuracy, % (2,000 images)")
    seeds = len(points[budgets[0]]["transfer"])
    ax.set_title(f"Fashion-MNIST A→B, CNN, mean ± std over {seeds} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="bench/results")
    parser.add_argument("--curve", default="pipeline_vs_plain_cnn.json",
                        help="the pipeline_vs_plain.py results (with budgets) under --results")
    parser.add_argument("--plot", help="write the learning-curve PNG here")
    args = parser.parse_args()
    for path in sorted(Path(args.results).glob("*.json")):
        results = json.loads(path.read_text())
        if "seeds" in results and "summary" in results:
            print(f"\n## {path.name}\n\n{pipeline_vs_plain(results)}\n\n"
                  f"{curve_table(curve(results))}")
        elif "runs" in results:
            print(f"\n## {path.name}\n\n{plain_runs(results)}")
        else:
            print(f"\n## {path.name}\n\n```json\n{json.dumps(results, indent=1)[:3000]}\n```")
    if args.plot:
        plot_curve(curve(json.loads((Path(args.results) / args.curve).read_text())), args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
