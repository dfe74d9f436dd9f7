"""Pretraining without labels beside pretraining on a labelled source, seed by seed.

For each method and seed: one uncached `tfx-transfer run` of
configs/fashion_mnist_unlabelled.yaml with `seed=<seed>` and `pretraining.method=<method>`.
The base pretrains on the target's train and eval images beyond its 160 + 40 labels,
without their labels; transfer and scratch train on those 200 labels and are judged on the
2,000 test images. The supervised source's runs on the same seeds and the same 200 labels
are read from `--supervised` (bench/pipeline_vs_plain.py on
configs/fashion_mnist_shirt_tshirt.yaml, also `seed=<seed>`): the scratch model is trained
on the same sample with the same seed in both, so both scratch accuracies are recorded as a
check. Reported per seed: both accuracies, the gain, the blessing, the labels each model
used and the seconds; summarised: mean ± std, on how many seeds transfer beats scratch, and
the share of the supervised source's mean gain that the method recovers.

A seed whose report exists in `--workdir` is read, not rerun; the results file is
rewritten after every seed, so an interrupted benchmark resumes where it stopped.
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


def run_seed(method: str, seed: int, workdir: Path, overrides: list[str]) -> None:
    """One uncached pipeline run from an empty `workdir`."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    sets = [f"seed={seed}", f"pretraining.method={method}", f"pipeline_root={workdir}/root",
            f"serving_dir={workdir}/serving", *overrides]
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", CONFIG,
               *[arg for item in sets for arg in ("--set", item)]]
    run_logged(command, workdir / "pipeline.log")
    (workdir / "load_average").write_text(str(os.getloadavg()[0]))  # written last


def seed_result(workdir: Path) -> dict:
    """A finished run's accuracies, blessing, labels and seconds, from its report."""
    [seconds] = re.findall(r"Pipeline finished in ([\d.]+) s",
                           (workdir / "pipeline.log").read_text())
    [path] = glob.glob(f"{workdir}/root/reports/*/report.json")
    report = json.loads(Path(path).read_text())
    metrics = report["metrics"]
    return {"transfer_accuracy": metrics["transfer"]["accuracy"],
            "scratch_accuracy": metrics["scratch"]["accuracy"],
            "gain": metrics["transfer"]["accuracy"] - metrics["scratch"]["accuracy"],
            "blessed": report["blessed"], "labels": report["labels"],
            "seconds": float(seconds),
            "pretrain_seconds": report["component_seconds"]["pretrain_trainer"],
            "load_average_1min": float((workdir / "load_average").read_text())}


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
    results: dict = {"config": vars(args), "supervised": supervised, "methods": {}}
    for method in args.methods:
        runs: dict[str, dict] = {}
        for seed in args.seeds:
            workdir = Path(args.workdir) / method / f"seed-{seed}"
            if not (workdir / "load_average").exists():
                run_seed(method, seed, workdir, args.overrides)
            runs[str(seed)] = seed_result(workdir)
            print(f"{method} seed {seed}: {json.dumps(runs[str(seed)])}", flush=True)
            results["methods"][method] = {"seeds": runs,
                                          "summary": summarize(runs, supervised)}
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({m: r["summary"] for m, r in results["methods"].items()}, indent=2))


if __name__ == "__main__":
    main()
