"""Scheduled retraining on the embedded default, as four ticks of `tfx-transfer run`:

1. target span 1 arrives (sandal / shirt image folders, 1,500 per class from Fashion-MNIST's
   train file; 200 labelled training images, as in the default), pretraining on all of
   task A, and a push;
2. a tick with nothing new;
3. span 2 arrives (another 1,500 per class): the target side retrains;
4. the newest served version is deleted by hand (a rollback; with one version served, the
   serving dir is left empty) and the next tick runs.

For each tick: wall-clock seconds, seconds and state (complete / cached) per component,
blessed, pushed, the version compared with and the accuracies, from the run's report.json.
Resumable: finished ticks are kept in the result file and not rerun.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
TARGET = {5: "Sandal", 6: "Shirt"}


def read_idx(name: str) -> np.ndarray:
    with gzip.open(os.path.join(FASHION_MNIST, name), "rb") as file:
        data = file.read()
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3]))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(shape)


def write_span(target: Path, span: int, start: int, per_class: int) -> None:
    images, labels = read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")
    for label, name in TARGET.items():
        folder = target / f"span-{span}" / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in np.flatnonzero(labels == label)[start:start + per_class]:
            Image.fromarray(images[index]).save(folder / f"{index}.png")


def tick(work: Path, name: str) -> dict:
    """One `tfx-transfer run` of the default with the target on the span folders."""
    sets = [f"target.path={work / 'target'}", "target.format=image_folder",
            "target.class_names=null", f"pipeline_root={work / 'pipeline'}",
            f"serving_dir={work / 'serving'}"]
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config",
               "configs/fashion_mnist_ab.yaml", *(a for s in sets for a in ("--set", s))]
    started = time.perf_counter()
    with (work / f"{name}.log").open("w") as log:
        subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    seconds = time.perf_counter() - started
    reports = work / "pipeline" / "reports"
    report = json.loads((max(reports.iterdir(), key=os.path.getmtime) / "report.json")
                        .read_text())
    return {"tick": name, "wall_seconds": round(seconds, 1),
            "load_average": os.getloadavg(),
            "component_seconds": report["component_seconds"],
            "component_states": report["component_states"],
            "blessed": report["blessed"], "pushed": report["pushed"],
            "push_reasons": report["push_reasons"],
            "served_version": report["served_version"],
            "versions_served": sorted(os.listdir(work / "serving")),
            "accuracy": {model: report["metrics"].get(model, {}).get("accuracy")
                         for model in ("transfer", "scratch", "served")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/retraining_spans.json")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    done = json.loads(args.out.read_text())["ticks"] if args.out.exists() else []
    steps = [("span-1", lambda: write_span(args.workdir / "target", 1, 0, args.per_class)),
             ("no-new-data", lambda: None),
             ("span-2", lambda: write_span(args.workdir / "target", 2, args.per_class,
                                           args.per_class)),
             ("newest-version-removed", lambda: shutil.rmtree(
                 args.workdir / "serving" / sorted(os.listdir(args.workdir / "serving"))[-1]))]
    for name, prepare in steps[len(done):]:
        prepare()
        done.append(tick(args.workdir, name))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "ticks": done},
                                       indent=1))
        print(f"{name}: {done[-1]['wall_seconds']} s, pushed {done[-1]['pushed']}", flush=True)


if __name__ == "__main__":
    main()
