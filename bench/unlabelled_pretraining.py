"""Pretraining without labels beside pretraining on a labelled source, seed by seed.

For each method and seed: one uncached `tfx-transfer run` of
configs/fashion_mnist_unlabelled.yaml with `seed=<seed>` and `pretraining.method=<method>`,
then one cached run per other `--reuse` value (the pretraining is cached, the transfer
Trainer and the Evaluators re-run; each variant pushes to a serving dir of its own).
The base pretrains on the target's train and eval images beyond its 160 + 40 labels,
without their labels; transfer and scratch train on those 200 labels and are judged on the
2,000 test images. The supervised source's runs on the same seeds and the same 200 labels
are read from `--supervised` (bench/pipeline_vs_plain.py on
configs/fashion_mnist_shirt_tshirt.yaml, also `seed=<seed>`): the scratch model is trained
on the same sample with the same seed in both, so both scratch accuracies are recorded as a
check. Reported per seed: both accuracies, the gain, the blessing, the labels each model
used and the seconds; summarised: mean ± std, on how many seeds transfer beats scratch, and
the share of the supervised source's mean gain that the method recovers.

A variant whose run finished in `--workdir` is read, not rerun; the results file is
rewritten after every run, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.pipeline_vs_plain import mean_std, run_logged  # noqa: E402

CONFIG = "configs/fashion_mnist_unlabelled.yaml"


def run_variant(method: str, seed: int, reuse: str, workdir: Path,
                overrides: list[str]) -> Path:
    """One pipeline run of `method` on `seed` reusing `reuse` layers, in the seed's pipeline
    root (the first one of a seed starts it empty); returns its log, written last."""
    log = workdir / f"reuse-{reuse}.log"
    if log.with_suffix(".done").exists():
        return log
    sets = [f"seed={seed}", f"pretraining.method={method}", f"model.reuse_layers={reuse}",
            f"pipeline_root={workdir}/root", f"serving_dir={workdir}/serving-{reuse}",
            *overrides]
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", CONFIG,
               *[arg for item in sets for arg in ("--set", item)]]
    run_logged(command, log)
    log.with_suffix(".done").write_text(str(os.getloadavg()[0]))
    return log


def variant_result(log: Path) -> dict:
    """A finished run's accuracies, blessing, labels and seconds, from its report."""
    text = log.read_text()
    [seconds] = re.findall(r"Pipeline finished in ([\d.]+) s", text)
    [html] = re.findall(r"^report: (.+)$", text, re.MULTILINE)
    report = json.loads(Path(html).with_name("report.json").read_text())
    metrics = report["metrics"]
    return {"transfer_accuracy": metrics["transfer"]["accuracy"],
            "scratch_accuracy": metrics["scratch"]["accuracy"],
            "gain": metrics["transfer"]["accuracy"] - metrics["scratch"]["accuracy"],
            "blessed": report["blessed"], "labels": report["labels"],
            "seconds": float(seconds), "component_states": report["component_states"],
            "pretrain_seconds": report["component_seconds"]["pretrain_trainer"],
            "load_average_1min": float(log.with_suffix(".done").read_text())}


def supervised_runs(path: str) -> dict[str, dict]:
    """Per seed, the supervised-source pipeline's accuracies and gain."""
    seeds = json.loads(Path(path).read_text())["seeds"]
    return {seed: {"transfer_accuracy": entry["pipeline"]["transfer_accuracy"],
                   "scratch_accuracy": entry["pipeline"]["scratch_accuracy"],
                   "gain": entry["pipeline"]["transfer_accuracy"]
                   - entry["pipeline"]["scratch_accuracy"]}
            for seed, entry in seeds.items()}


def summarize(runs: dict[str, dict], supervised: dict[str, dict]) -> dict:
    """Mean ± std of both accuracies and the gain, wins, and the supervised gain recovered
    (the ratio of mean gains over the seeds both have)."""
    summary = {key: mean_std([run[key] for run in runs.values()])
               for key in ("transfer_accuracy", "scratch_accuracy", "gain")}
    summary["seeds"] = len(runs)
    summary["wins"] = sum(run["gain"] > 0 for run in runs.values())
    summary["blessed"] = sum(run["blessed"] for run in runs.values())
    shared = [seed for seed in runs if seed in supervised]
    if shared:
        supervised_gain = statistics.fmean(supervised[seed]["gain"] for seed in shared)
        own_gain = statistics.fmean(runs[seed]["gain"] for seed in shared)
        summary["supervised_gain"] = supervised_gain
        summary["recovered_share"] = own_gain / supervised_gain if supervised_gain else None
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", nargs="+", default=["autoencoder"],
                        choices=["autoencoder", "rotation"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--reuse", nargs="+", default=["1", "all"],
                        help="model.reuse_layers values; the first runs uncached")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra config override, key=value")
    parser.add_argument("--supervised",
                        default="bench/results/pipeline_vs_plain_shirt_tshirt.json")
    parser.add_argument("--workdir", default="/tmp/tfx-transfer-bench/unlabelled")
    parser.add_argument("--out", default="bench/results/unlabelled_pretraining.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    supervised = supervised_runs(args.supervised)
    out = Path(args.out)
    # Other methods' results, of an earlier invocation, are kept.
    earlier = json.loads(out.read_text())["methods"] if out.exists() else {}
    results: dict = {"config": vars(args), "supervised": supervised, "methods": {
        method: variants for method, variants in earlier.items() if method not in args.methods}}
    for method in args.methods:
        for reuse in args.reuse:
            results["methods"].setdefault(method, {})[f"reuse-{reuse}"] = {"seeds": {}}
    for seed in args.seeds:
        for method in args.methods:
            workdir = Path(args.workdir) / method / f"seed-{seed}"
            if not (workdir / "root").exists():
                shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True, exist_ok=True)
            for reuse in args.reuse:
                entry = results["methods"][method][f"reuse-{reuse}"]
                run = variant_result(run_variant(method, seed, reuse, workdir, args.overrides))
                entry["seeds"][str(seed)] = run
                entry["summary"] = summarize(entry["seeds"], supervised)
                print(f"{method} reuse {reuse} seed {seed}: {json.dumps(run)}", flush=True)
                out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({m: {v: r["summary"] for v, r in variants.items()}
                      for m, variants in results["methods"].items()}, indent=2))


if __name__ == "__main__":
    main()
