"""Markdown tables and the learning-curve plot from the JSON files the benchmarks wrote.

    .venv/bin/python bench/summarize.py --results bench/results --plot docs/learning_curve.png

Prints one section per results file found (docs/benchmarks.md quotes them), then the
overhead-and-memory table over the source sizes of the pipeline_vs_plain_cnn* files.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

TRAINERS = ("pretrain_trainer", "transfer_trainer", "scratch_trainer")


def pct(mean_std: dict) -> str:
    return f"{100 * mean_std['mean']:.2f} ± {100 * mean_std['std']:.2f}"


def ratio(value: float | None) -> str:
    return "∞ (no transfer error)" if value is None else f"{value:.1f}"


def gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def pretrain_ratio(entry: dict, seed: str, budget: int) -> float:
    """Pipeline pretraining seconds / plain pretraining seconds: the same training, so about
    1.0 when both ran under the same load, above it when the pipeline's run was loaded more."""
    plain = entry["plain"]
    phases = plain["runs"][f"{budget}/all"]["seeds"][seed]["seconds"]
    return (entry["pipeline"]["component_seconds"]["pretrain_trainer"]
            / (plain["seconds"] - sum(phases.values())))


def pipeline_vs_plain(results: dict) -> str:
    """Per-seed rows and the summary of bench/pipeline_vs_plain.py."""
    rows = ["| seed | pipeline transfer % | pipeline scratch % | error ratio | plain transfer % | "
            "plain scratch % | pipeline s (components / process) | plain s | pretraining "
            "pipeline / plain | load |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    s = results["summary"]
    for (seed, entry), err in zip(results["seeds"].items(), s["pipeline"]["error_ratios"]):
        p, q = entry["pipeline"], entry["plain"]
        rows.append(f"| {seed} | {100 * p['transfer_accuracy']:.2f} | "
                    f"{100 * p['scratch_accuracy']:.2f} | {ratio(err)} | "
                    f"{100 * q['transfer_accuracy']:.2f} | {100 * q['scratch_accuracy']:.2f} | "
                    f"{p['seconds']:.0f} / {p['process_seconds']:.0f} | {q['seconds']:.0f} | "
                    f"{pretrain_ratio(entry, seed, results['config']['budget']):.2f} | "
                    f"{entry['load_average_1min']:.1f} |")
    adjusted = [r / pretrain_ratio(e, seed, results["config"]["budget"]) for r, (seed, e) in
                zip(s["time_ratios"], results["seeds"].items())]
    rows += ["", f"- pipeline: transfer {pct(s['pipeline']['transfer'])} %, scratch "
             f"{pct(s['pipeline']['scratch'])} %; blessed on "
             f"{sum(e['pipeline']['blessed'] for e in results['seeds'].values())} of "
             f"{len(results['seeds'])} seeds",
             f"- plain Keras: transfer {pct(s['plain']['transfer'])} %, scratch "
             f"{pct(s['plain']['scratch'])} %",
             f"- wall-clock pipeline / plain: median {s['median_time_ratio']:.2f} over the "
             f"components ({', '.join(f'{r:.2f}' for r in s['time_ratios'])}), "
             f"{s['median_process_time_ratio']:.2f} over the whole process "
             f"({', '.join(f'{r:.2f}' for r in s['process_time_ratios'])})",
             f"- the same, divided by each seed's pretraining ratio (an estimate that assumes "
             f"the whole pipeline run was slowed as its pretraining was): median "
             f"{statistics.median(adjusted):.2f} ({', '.join(f'{r:.2f}' for r in adjusted)})",
             f"- peak RSS: pipeline {gb(s['pipeline']['max_peak_rss_bytes'])}, plain "
             f"{gb(s['plain']['max_peak_rss_bytes'])}"]
    return "\n".join(rows)


def component_table(results: dict) -> str:
    """Median seconds per component and their share of the pipeline's time."""
    seconds = results["summary"]["median_component_seconds"]
    total = sum(seconds.values())
    rows = ["| component | median s | share |", "|---|---|---|"]
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        if value >= 0.5:
            rows.append(f"| {name} | {value:.1f} | {100 * value / total:.0f} % |")
    return "\n".join(rows)


def overhead_row(results: dict) -> str:
    """One source size: times, the non-training share and peak memory (medians over seeds)."""
    seeds = list(results["seeds"].values())
    images = seeds[0]["plain"]["source_train_images"]
    s = results["summary"]
    overhead = statistics.median(
        sum(v for k, v in e["pipeline"]["component_seconds"].items() if k not in TRAINERS)
        for e in seeds)
    training = statistics.median(
        sum(e["pipeline"]["component_seconds"][k] for k in TRAINERS) for e in seeds)
    return (f"| {images:,} | {len(seeds)} | {s['pipeline']['median_seconds']:.0f} | "
            f"{s['plain']['median_seconds']:.0f} | {s['median_time_ratio']:.2f} | "
            f"{s['median_process_time_ratio']:.2f} | {training:.0f} | {overhead:.0f} "
            f"({100 * overhead / (overhead + training):.0f} %) | "
            f"{gb(s['pipeline']['max_peak_rss_bytes'])} | "
            f"{gb(s['plain']['max_peak_rss_bytes'])} |")


def overhead_table(files: list[dict]) -> str:
    rows = ["| task A train images | seeds | pipeline s | plain s | ratio | ratio (process) | "
            "pipeline Trainers s | other components s (share) | pipeline peak RSS | "
            "plain peak RSS |", "|---|---|---|---|---|---|---|---|---|---|"]
    files = sorted(files, key=lambda r: next(iter(r["seeds"].values()))["plain"][
        "source_train_images"])
    return "\n".join(rows + [overhead_row(results) for results in files])


def plain_runs(results: dict) -> str:
    """Rows per (budget, unfreeze) of bench/plain_keras_reference.py, with per-seed wins."""
    rows = ["| labels | fine-tuned layers | transfer % | scratch % | transfer wins |",
            "|---|---|---|---|---|"]
    for entry in results["runs"].values():
        s, seeds = entry["summary"], entry["seeds"].values()
        wins = sum(r["transfer_accuracy"] > r["scratch_accuracy"] for r in seeds)
        rows.append(f"| {entry['budget']} | {entry['unfreeze']} | {pct(s['transfer'])} | "
                    f"{pct(s['scratch'])} | {wins} of {len(seeds)} |")
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


def frozen_caching(results: dict) -> str:
    m, acc = results["median_seconds"], results["eval_accuracy"]
    c = results["config"]
    return (f"{c['architecture']} at {c['size']}×{c['size']}×{c['channels']}, "
            f"{c['epochs']} frozen epochs, {results['train_images']} train + "
            f"{results['eval_images']} eval images: uncached {m['uncached']:.1f} s, cached "
            f"{m['cached']:.1f} s (medians of {c['repeats']}), **{results['speedup']:.1f}×**; "
            f"eval accuracy uncached {', '.join(f'{a:.4f}' for a in acc['uncached'])}, cached "
            f"{', '.join(f'{a:.4f}' for a in acc['cached'])}; load "
            f"{results['load_average_1min']:.1f}")


def transform_throughput(results: dict) -> str:
    rate = results["images_per_s"]
    return (f"{results['images']:,} images, median of {results['repeats']}: Transform "
            f"component {rate['transform_component']:.0f} images/s, plain tf.data "
            f"{rate['plain_tf_data']:.0f} images/s; time ratio Transform / plain "
            f"**{results['ratio_transform_to_plain']:.2f}**; load "
            f"{results['load_average_1min']:.1f}")


def serving_latency(results: dict) -> str:
    rows = ["| path | p50 ms (batch 1) | p99 ms (batch 1) | images/s at 32 | images/s at 256 |",
            "|---|---|---|---|---|"]
    for name in ("serving_raw", "keras_on_decoded_tensors"):
        e = results[name]
        rows.append(f"| {name} | {e['batch_1']['p50_ms']:.2f} | {e['batch_1']['p99_ms']:.2f} | "
                    f"{e['batch_32_images_per_s']:.0f} | {e['batch_256_images_per_s']:.0f} |")
    return "\n".join(rows + ["", f"p50 ratio raw bytes / decoded tensors: "
                                 f"{results['p50_ratio_raw_to_reference']:.2f}; load "
                                 f"{results['load_average_1min']:.1f}"])


def recipe_ablation(results: dict) -> str:
    """Variant x task: both test accuracies, the smallest per-seed error ratio, wins."""
    rows = ["| variant | task | transfer % | scratch % | error ratio per seed | transfer wins |",
            "|---|---|---|---|---|---|"]
    for variant, tasks in results["summary"].items():
        for task, row in tasks.items():
            ratios = ", ".join(f"{value:.2f}" for value in row["error_ratios"])
            rows.append(f"| {variant} | {task} | {pct(row['transfer'])} | {pct(row['scratch'])} "
                        f"| {ratios} | {row['wins']} of {row['seeds']} |")
    return "\n".join(rows)


def study(results: dict) -> str:
    """A `tfx-transfer study` table, as study.md has it."""
    from pipeline.study import table

    meets = "; ".join(f"{variant}: scratch catches up from {budget} labels" if budget
                      else f"{variant}: transfer ahead at every budget"
                      for variant, budget in results["meeting_budget"].items())
    return f"{table(results['rows'])}\n\n{meets}"


def elpv_costs(results: dict) -> str:
    """Per backbone and resolution: ms per image, the linear probe's test accuracy, and the
    frozen phase cached and not at the config's resolution."""
    lines = ["| backbone | px | forward ms/image | training step ms/image | linear probe, "
             "500 labels (3 seeds) | linear probe, 1,968 |", "|---|---|---|---|---|---|"]
    frozen = []
    for backbone, sizes in results["backbones"].items():
        for size, row in sizes.items():
            probe = row["linear_probe_test_accuracy"]
            lines.append(f"| {backbone} | {size} | {row['forward_ms']:.1f} | "
                         f"{row['train_step_ms']:.1f} | "
                         f"{statistics.fmean(probe['500']):.2%} ({min(probe['500']):.2%}–"
                         f"{max(probe['500']):.2%}) | {probe['1968']:.2%} |")
            if "frozen_phase" in row:
                cached, uncached = row["frozen_phase"]["cached"], row["frozen_phase"]["uncached"]
                frozen.append(f"{backbone} at {size} px, frozen phase (10 epochs, 400 + 100 "
                              f"cells): uncached {uncached['seconds']} s, cached "
                              f"{cached['seconds']} s (**{uncached['seconds'] / cached['seconds']:.1f}×**); "
                              f"eval accuracy {uncached['eval_accuracy']:.2%} / "
                              f"{cached['eval_accuracy']:.2%}")
    load = results["load_average_1min_before"]
    return "\n".join(lines) + "\n\n" + "\n\n".join(frozen) + f"\n\nload before: {load:.2f}"


def elpv_transfer(results: dict) -> str:
    """Each backbone's study table, its cells' seconds, beside the references."""
    from pipeline.study import table

    parts = [", ".join(f"{name} {value:.2%}" for name, value in results["references"].items()
                       if isinstance(value, float))]
    for name, study in results["studies"].items():
        seconds = [cell["seconds"] for cell in study["cells"]]
        parts.append(f"**{name}** ({len(seconds)} runs, {min(seconds):.0f}–{max(seconds):.0f} s "
                     f"each)\n\n{table(study['rows'])}")
    return "\n\n".join(parts)


def ci_durations(results: dict, top: int = 15) -> str:
    """The test phase's wall time, each worker's busy seconds and the costliest groups."""
    tests = results["tests"].values()
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in results["outcomes"].items())
    busy = ", ".join(f"{w} {s} s" for w, s in results["worker_seconds"].items())
    rows = [f"{len(tests)} tests ({outcomes}) in {results['wall_seconds']} s on "
            f"{results['workers']} workers (busy: {busy}); load before: "
            f"{results['load_average_before'][0]:.2f}", "",
            "| group (one worker each) | tests | seconds | share of the busy time |",
            "|---|---|---|---|"]
    busy_total = sum(results["worker_seconds"].values())
    for group, seconds in list(results["group_seconds"].items())[:top]:
        count = sum(1 for test in tests if test["group"] == group)
        rows.append(f"| {group} | {count} | {seconds} | {100 * seconds / busy_total:.0f} % |")
    return "\n".join(rows)


def fresh_clone_ci(results: dict) -> str:
    """Each fresh-clone `.ci/run`: its outcome, test phase and setup."""
    rows = [f"commit {results['commit'][:10]}", "",
            "| run | pytest | test phase | setup | load before |", "|---|---|---|---|---|"]
    for number, run in enumerate(results["runs"], 1):
        minutes = f"{run['test_seconds'] // 60} min {run['test_seconds'] % 60} s"
        rows.append(f"| {number} | {run['outcomes']} | {minutes} | {run['setup_seconds']} s | "
                    f"{run['load_average_before'][0]:.2f} |")
    return "\n".join(rows)


def image_build(results: dict) -> str:
    """The image's build and start-up seconds, and its size."""
    rows = ["| case | seconds |", "|---|---|"]
    rows += [f"| {case} | {seconds} |" for case, seconds in results["seconds"].items()]
    return "\n".join(rows) + (f"\n\n{results['image_gb']} GB; load before: "
                              f"{results['load_average_before'][0]:.2f}")


def section(name: str, results: dict) -> str | None:
    """The markdown of one results file, by what the file holds."""
    if "skipped" in results:
        return None
    if name == "ci_durations":
        return ci_durations(results)
    if name == "fresh_clone_ci":
        return fresh_clone_ci(results)
    if name == "image_build":
        return image_build(results)
    if name == "elpv_costs":
        return elpv_costs(results)
    if name == "elpv_transfer":
        return elpv_transfer(results)
    if name.startswith("recipe_ablation"):
        return recipe_ablation(results)
    if name.startswith("study_"):
        return study(results)
    if name.startswith("pipeline_vs_plain"):
        text = f"{pipeline_vs_plain(results)}\n\n{component_table(results)}"
        points = curve(results)
        return text + (f"\n\n{curve_table(points)}" if len(points) > 1 else "")
    if name.startswith("scaling_multiworker"):
        epoch = results["median_epoch_seconds"]
        return (f"{results['images']:,} images, global batch {results['global_batch']}, "
                f"{results['cpus']} CPUs: median steady-state epoch {epoch['1']:.2f} s in one "
                f"process, {epoch['2']:.2f} s with 2 worker processes "
                f"({epoch['2'] / epoch['1']:.2f}×); load {results['load_average_before'][0]:.1f}")
    if "runs" in results:
        return plain_runs(results)
    if name.startswith("frozen_caching"):
        return frozen_caching(results)
    if name.startswith("transform_throughput"):
        return transform_throughput(results)
    if name.startswith("serving_latency"):
        return serving_latency(results)
    return f"```json\n{json.dumps(results, indent=1)[:2000]}\n```"


def plot_curve(points: dict[int, dict[str, list[float]]], path: str) -> None:
    """Test accuracy vs labelled target images, transfer and scratch, std error bars: the
    whole range, and zoomed in on the top 3 points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(points)
    seeds = len(points[budgets[0]]["transfer"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, bottom in zip(axes, (None, 97.0)):
        for kind, style in (("transfer", "o-"), ("scratch", "s--")):
            ax.errorbar(budgets, [np.mean(points[b][kind]) for b in budgets],
                        yerr=[np.std(points[b][kind]) for b in budgets], fmt=style,
                        capsize=3, label=kind)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_xlabel("labelled target images (sandal vs shirt)")
        ax.set_ylabel("test accuracy, % (2,000 images)")
        if bottom is not None:
            ax.set_ylim(bottom, 100.1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    axes[0].set_title(f"Fashion-MNIST A→B, CNN, mean ± std, {seeds} seeds")
    axes[1].set_title("the same, 97–100 %")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="bench/results")
    parser.add_argument("--curve", default="pipeline_vs_plain_cnn.json",
                        help="the pipeline_vs_plain.py results (with budgets) under --results")
    parser.add_argument("--plot", help="write the learning-curve PNG here")
    args = parser.parse_args()
    loaded = {path.stem: json.loads(path.read_text())
              for path in sorted(Path(args.results).glob("*.json"))}
    for name, results in loaded.items():
        text = section(name, results)
        if text is not None:
            print(f"\n## {name}\n\n{text}")
    sizes = [r for n, r in loaded.items() if n.startswith("pipeline_vs_plain_cnn")]
    if sizes:
        print(f"\n## overhead and memory by source size\n\n{overhead_table(sizes)}")
    if args.plot:
        plot_curve(curve(loaded[Path(args.curve).stem]), args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
