"""ExampleGen + Transform wall-clock on the DirectRunner: in-memory vs 1 vs 2 worker processes.

Runs the pipeline's own target ExampleGen and Transform executors (tests/scaling_stages.py)
on the first N Fashion-MNIST images, each mode `--repeats` times in interleaved order (so
load from other processes spreads over all modes), and prints the median seconds per stage.

    .venv/bin/python bench/scaling_beam.py --train 9000 --test 1000 --repeats 3 --out /tmp/beam.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import psutil

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.config import PipelineConfig  # noqa: E402  (after the environment is set)
from tests import scaling_stages as stages  # noqa: E402
from bench.bench_io import add_subset_args, all_classes_config  # noqa: E402

MODES = {"in_memory": stages.IN_MEMORY, "processes_1": stages.multi_processing(1),
         "processes_2": stages.multi_processing(2)}


def machine() -> dict:
    """What the numbers were measured on, and how busy it was."""
    return {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "processor": platform.processor() or platform.machine(),
            "load_average": os.getloadavg()}


def tree_rss() -> int:
    """Resident bytes of this process and all its children (Beam's worker processes)."""
    me = psutil.Process()
    total = 0
    for process in [me, *me.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Samples tree_rss() every 0.5 s while the block runs; the peak lands in the dict."""
    peak = {"bytes": tree_rss()}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak["bytes"] = max(peak["bytes"], tree_rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def timed_run(config: PipelineConfig, out: str, beam_args: list[str]) -> dict[str, float]:
    """Seconds of ExampleGen and of Transform (each executor's whole Do, as a pipeline pays)
    and the peak resident memory of the process tree, in MB."""
    nodes = stages.local_nodes(config)
    context = stages.beam_context(os.path.join(out, "tmp"), beam_args)
    with peak_rss() as peak:
        start = time.perf_counter()
        examples = stages.run_example_gen(nodes["target_example_gen"], out, context)
        middle = time.perf_counter()
        stages.run_transform(nodes["target_transform"], examples, out, context)
        end = time.perf_counter()
    return {"example_gen": middle - start, "transform": end - middle, "total": end - start,
            "peak_rss_mb": peak["bytes"] / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_subset_args(parser, train=9000)
    parser.add_argument("--out", help="JSON results file")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="scaling_beam_")
    try:
        config = all_classes_config(root, args.train, args.test)
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        before = machine()
        for repeat in range(args.repeats):
            for mode, beam_args in MODES.items():
                out = os.path.join(root, f"{mode}-{repeat}")
                runs[mode].append(timed_run(config, out, beam_args))
                shutil.rmtree(out)
                print(mode, repeat, {k: round(v, 1) for k, v in runs[mode][-1].items()},
                      flush=True)
        medians = {mode: {stage: round(statistics.median(run[stage] for run in results), 1)
                          for stage in results[0]} for mode, results in runs.items()}
        report = {"images": args.train + args.test, "repeats": args.repeats,
                  "machine_before": before, "machine_after": machine(),
                  "median_seconds": medians, "runs": runs}
        print(json.dumps(report["median_seconds"], indent=1))
        if args.out:
            with open(args.out, "w", encoding="utf-8") as file:
                json.dump(report, file, indent=1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
