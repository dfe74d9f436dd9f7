"""What a Python process of the project pays before it does any work, side by side in one run.

    .venv/bin/python bench/startup.py --out bench/results/startup.json

Every `tfx-transfer run`, Beam worker, Kubeflow task and test worker is a new process. Two
costs were found in them (docs/development.md):

* bytecode: with PYTHONDONTWRITEBYTECODE set, as on these machines, no import ever writes a
  .pyc; unless setup compiled them (`uv sync --compile-bytecode`), every process compiles its
  modules from source. "source" runs with an empty `-X pycache_prefix`, where no .pyc is found.
* `tfx.v1`: the public API module imports the Vertex AI client too; the pipeline imports the
  TFX modules it uses instead.

Each case is a fresh interpreter importing what the local runner imports; median of --repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import tfx

# What pipeline/pipeline.py and pipeline/local_runner.py import from TFX.
TFX_MODULES = "; ".join([
    "from tfx.components import Evaluator, ExampleValidator, SchemaGen, StatisticsGen, Trainer",
    "from tfx.components import Transform",
    "from tfx.dsl.components.base.base_node import BaseNode",
    "from tfx.orchestration.local.local_dag_runner import LocalDagRunner",
    "from tfx.orchestration.metadata import sqlite_metadata_connection_config",
    "from tfx.orchestration.pipeline import Pipeline",
    "from tfx.proto.trainer_pb2 import EvalArgs, TrainArgs",
    "from tfx.proto.transform_pb2 import SplitsConfig",
    "from tfx.types.channel import Channel"])
CASES = {
    "local runner (bytecode)": ([], "import pipeline.local_runner"),
    "local runner (source)": (["-X", "pycache_prefix={empty}"], "import pipeline.local_runner"),
    "tfx.v1": ([], "from tfx import v1"),
    "the TFX modules the pipeline imports": ([], TFX_MODULES),
}


def seconds(flags: list[str], code: str, empty: str) -> float:
    """Wall seconds of a fresh interpreter running `code`."""
    command = [sys.executable, *(flag.format(empty=empty) for flag in flags), "-c", code]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)  # the bytecode cases read the venv's __pycache__
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def check_compiled() -> None:
    """Exit unless setup compiled the venv: else both local-runner cases compile from source."""
    if not os.path.exists(importlib.util.cache_from_source(tfx.__file__)):
        sys.exit(f"no bytecode beside {tfx.__file__}: run `make setup` first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/startup.json")
    args = parser.parse_args()
    check_compiled()
    results: dict = {"command": " ".join(["bench/startup.py", *sys.argv[1:]]),
                     "load_average_before": os.getloadavg(), "cpus": os.cpu_count(), "cases": {}}
    with tempfile.TemporaryDirectory() as empty:
        for _ in range(args.repeats):  # interleaved, so load drifts hit every case alike
            for name, (flags, code) in CASES.items():
                results["cases"].setdefault(name, []).append(
                    round(seconds(flags, code, empty), 2))
    medians = {name: statistics.median(runs) for name, runs in results["cases"].items()}
    results["median_seconds"] = medians
    results["ratios"] = {
        "source / bytecode": round(medians["local runner (source)"]
                                   / medians["local runner (bytecode)"], 2),
        "tfx.v1 / the pipeline's TFX modules": round(
            medians["tfx.v1"] / medians["the TFX modules the pipeline imports"], 2)}
    with open(args.out, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)
    print(json.dumps({"median_seconds": medians, "ratios": results["ratios"]}, indent=1))


if __name__ == "__main__":
    main()
