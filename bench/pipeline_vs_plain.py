"""The TFX pipeline and the plain-Keras reference, side by side, seed by seed.

For each seed: one `tfx-transfer run` on a fresh pipeline root (nothing cached), then
`plain_keras_reference.py` on the same seed, architecture and label budget. The pipeline is
timed as a whole process; the plain script by its training alone (pretraining + the three
target phases: no data loading or imports, which favours the plain side). Reported: test
accuracy of transfer and scratch for both, the per-seed error ratio, the wall-clock ratio
pipeline / plain and the pipeline's seconds per component (medians over seeds).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_process(command: list[str], log: Path) -> float:
    """Run `command` from the project root, output to `log`; its wall-clock seconds."""
    start = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def run_pipeline(config: str, seed: int, workdir: Path, overrides: list[str]) -> dict:
    """One uncached pipeline run; its report.json plus the process's wall-clock seconds."""
    sets = [f"seed={seed}", f"pipeline_root={workdir}/root", f"serving_dir={workdir}/serving",
            *overrides]
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", config,
               *[arg for item in sets for arg in ("--set", item)]]
    seconds = timed_process(command, workdir / "pipeline.log")
    [report] = glob.glob(f"{workdir}/root/reports/*/report.json")
    with open(report) as f:
        result = json.load(f)
    metrics = result["metrics"]
    return {"seconds": seconds, "transfer_accuracy": metrics["transfer"]["accuracy"],
            "scratch_accuracy": metrics["baseline"]["accuracy"], "blessed": result["blessed"],
            "pushed": result["pushed"], "component_seconds": result["component_seconds"]}


def run_plain(plain_args: list[str], seed: int, budget: int, workdir: Path) -> dict:
    """The plain reference on the same seed; `plain_args` may add label budgets (a learning
    curve from the same pretrained model), the comparison takes `budget`'s. Its seconds are
    the training it shares with the pipeline: pretraining plus that budget's three phases."""
    out = workdir / "plain.json"
    command = [sys.executable, "bench/plain_keras_reference.py", "--seeds", str(seed),
               "--budgets", str(budget), *plain_args, "--out", str(out)]
    process_seconds = timed_process(command, workdir / "plain.log")
    with out.open() as f:
        results = json.load(f)
    [entry] = [e for e in results["runs"].values()
               if e["budget"] == budget and e["unfreeze"] == "all"]
    record = entry["seeds"][str(seed)]
    seconds = results["pretrain"][str(seed)]["seconds"] + sum(record["seconds"].values())
    return {"seconds": seconds, "process_seconds": process_seconds,
            "transfer_accuracy": record["transfer_accuracy"],
            "scratch_accuracy": record["scratch_accuracy"], "runs": results["runs"]}


def mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}


def error_ratio(run: dict) -> float | None:
    """Scratch error / transfer error; None when transfer made no error."""
    transfer_error = 1 - run["transfer_accuracy"]
    return (1 - run["scratch_accuracy"]) / transfer_error if transfer_error > 0 else None


def summarize(seeds: dict) -> dict:
    """Accuracy mean ± std per system and model, error ratios and time ratios."""
    out = {}
    for system in ("pipeline", "plain"):
        runs = [entry[system] for entry in seeds.values()]
        out[system] = {kind: mean_std([r[f"{kind}_accuracy"] for r in runs])
                       for kind in ("transfer", "scratch")}
        out[system]["error_ratios"] = [error_ratio(r) for r in runs]
        out[system]["median_seconds"] = statistics.median(r["seconds"] for r in runs)
    out["time_ratios"] = [e["pipeline"]["seconds"] / e["plain"]["seconds"] for e in seeds.values()]
    out["median_time_ratio"] = statistics.median(out["time_ratios"])
    components = [e["pipeline"]["component_seconds"] for e in seeds.values()]
    out["median_component_seconds"] = {
        name: statistics.median(c[name] for c in components) for name in components[0]}
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--config", default="configs/fashion_mnist_ab.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra config override for the pipeline, key=value")
    parser.add_argument("--budget", type=int, default=200, help="the config's label budget")
    parser.add_argument("--plain-args", default="--architecture cnn --recipe default",
                        help="arguments of plain_keras_reference.py matching the config; "
                        "'--budgets 20 50 ...' adds a learning curve per seed")
    parser.add_argument("--workdir", default="/tmp/tfx-transfer-bench")
    parser.add_argument("--out", default="bench/results/pipeline_vs_plain.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    results: dict = {"config": vars(args), "seeds": {}}
    for seed in args.seeds:
        workdir = Path(args.workdir) / f"seed-{seed}"
        workdir.mkdir(parents=True, exist_ok=False)
        entry = {"pipeline": run_pipeline(args.config, seed, workdir, args.overrides),
                 "plain": run_plain(args.plain_args.split(), seed, args.budget, workdir),
                 "load_average_1min": os.getloadavg()[0]}  # other work skews the timings
        results["seeds"][str(seed)] = entry
        print(f"seed {seed}: {json.dumps(entry)}", flush=True)
    results["summary"] = summarize(results["seeds"])
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
