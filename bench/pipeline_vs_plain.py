"""The TFX pipeline and the plain-Keras reference, side by side, seed by seed.

For each seed: one `tfx-transfer run` on a fresh pipeline root (nothing cached), then
`plain_keras_reference.py` on the same seed, architecture and label budget. The pipeline is
timed twice: as the run reports it (every component, from the first start to the last end)
and as a whole process (imports, building the pipeline and its module wheels, the report).
The plain script is timed by its training alone (pretraining + the three target phases at
`--budget`, no data loading or imports), which favours it. Reported: test accuracy of transfer
and scratch for both, the per-seed error ratio, both wall-clock ratios pipeline / plain, the
pipeline's seconds per component (medians over seeds) and each process's peak RSS.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_logged(command: list[str], log: Path) -> None:
    """Run `command` from the project root, its output to `log`; its wall-clock seconds and
    peak RSS go to `<log>.usage.json`."""
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        # wait4 reports this child's own peak (and its waited-for children's), not ours.
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), command)
    log.with_suffix(".usage.json").write_text(json.dumps(
        {"process_seconds": time.perf_counter() - start,
         "peak_rss_bytes": usage.ru_maxrss * 1024}))


def usage_of(log: Path) -> dict:
    """What `run_logged` recorded for `log`'s process."""
    return json.loads(log.with_suffix(".usage.json").read_text())


def run_pipeline(config: str, seed: int, workdir: Path, overrides: list[str]) -> dict:
    """One uncached pipeline run, from a fresh process: imports and setup count."""
    sets = [f"seed={seed}", f"pipeline_root={workdir}/root", f"serving_dir={workdir}/serving",
            *overrides]
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", config,
               *[arg for item in sets for arg in ("--set", item)]]
    run_logged(command, workdir / "pipeline.log")
    return pipeline_result(workdir)


def pipeline_result(workdir: Path) -> dict:
    """A finished run's accuracies, blessing and times, from its report and its output."""
    [seconds] = re.findall(r"Pipeline finished in ([\d.]+) s",
                           (workdir / "pipeline.log").read_text())
    [report] = glob.glob(f"{workdir}/root/reports/*/report.json")
    with open(report) as f:
        result = json.load(f)
    metrics = result["metrics"]
    return {"seconds": float(seconds), "transfer_accuracy": metrics["transfer"]["accuracy"],
            "scratch_accuracy": metrics["scratch"]["accuracy"], "blessed": result["blessed"],
            "pushed": result["pushed"], "component_seconds": result["component_seconds"],
            **usage_of(workdir / "pipeline.log")}


def run_plain(plain_args: list[str], seed: int, budget: int, workdir: Path) -> dict:
    """The plain reference on the same seed; `plain_args` may add label budgets (a learning
    curve from the same pretrained model), the comparison takes `budget`'s. Its seconds are
    the training it shares with the pipeline: pretraining plus that budget's three phases."""
    out = workdir / "plain.json"
    command = [sys.executable, "bench/plain_keras_reference.py", "--seeds", str(seed),
               "--budgets", str(budget), *plain_args, "--out", str(out)]
    run_logged(command, workdir / "plain.log")
    return plain_result(workdir, seed, budget)


def plain_result(workdir: Path, seed: int, budget: int) -> dict:
    """The plain run's accuracies at `budget`, its training seconds and all its budgets."""
    with (workdir / "plain.json").open() as f:
        results = json.load(f)
    [entry] = [e for e in results["runs"].values()
               if e["budget"] == budget and e["unfreeze"] == "all"]
    record = entry["seeds"][str(seed)]
    seconds = results["pretrain"][str(seed)]["seconds"] + sum(record["seconds"].values())
    return {"seconds": seconds, "transfer_accuracy": record["transfer_accuracy"],
            "scratch_accuracy": record["scratch_accuracy"], "runs": results["runs"],
            "source_train_images": results["config"]["sizes"]["a_train"],
            **usage_of(workdir / "plain.log")}


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
    out["process_time_ratios"] = [e["pipeline"]["process_seconds"] / e["plain"]["seconds"]
                                  for e in seeds.values()]
    out["median_process_time_ratio"] = statistics.median(out["process_time_ratios"])
    components = [e["pipeline"]["component_seconds"] for e in seeds.values()]
    for system in ("pipeline", "plain"):
        out[system]["max_peak_rss_bytes"] = max(e[system]["peak_rss_bytes"]
                                                for e in seeds.values())
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
    parser.add_argument("--workdir", default="/tmp/tfx-transfer-bench",
                        help="one folder per seed; a seed finished there is read, not rerun")
    parser.add_argument("--out", default="bench/results/pipeline_vs_plain.json")
    parser.add_argument("--source-budget", type=int,
                        help="task A training images for both (default: all 43,924)")
    return parser.parse_args()


def run_seed(args: argparse.Namespace, seed: int, workdir: Path) -> None:
    """Both systems on one seed, from an empty `workdir`."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    overrides, plain_args = list(args.overrides), args.plain_args.split()
    if args.source_budget is not None:
        overrides.append(f"source.label_budget={args.source_budget}")
        plain_args += ["--source-budget", str(args.source_budget)]
    run_pipeline(args.config, seed, workdir, overrides)
    run_plain(plain_args, seed, args.budget, workdir)
    (workdir / "load_average").write_text(str(os.getloadavg()[0]))  # others skew the timings


def main() -> None:
    args = parse_args()
    results: dict = {"config": vars(args), "seeds": {}}
    for seed in args.seeds:
        workdir = Path(args.workdir) / f"seed-{seed}"
        if not (workdir / "load_average").exists():  # written last: the seed is complete
            run_seed(args, seed, workdir)
        entry = {"pipeline": pipeline_result(workdir),
                 "plain": plain_result(workdir, seed, args.budget),
                 "load_average_1min": float((workdir / "load_average").read_text())}
        results["seeds"][str(seed)] = entry
        print(f"seed {seed}: {json.dumps(entry)}", flush=True)
    results["summary"] = summarize(results["seeds"])
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
