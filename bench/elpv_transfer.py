"""ImageNet → ELPV: test accuracy against total labels, transfer vs scratch, per backbone.

For each backbone: `tfx-transfer study` of configs/elpv_imagenet.yaml over `--budgets`
(labels in all, train + eval) × `--seeds` (target seeds), with the backbone's converted
ImageNet weights (data/weights/, made by scripts/setup). Every cell is one whole pipeline
run judged on the same 656-cell test split, the published benchmark's (Deitsch et al.,
Solar Energy 185, 2019: 75/25 stratified). The study keeps every finished cell, so running
the same command again resumes; the results file is rewritten after each backbone with
everything finished so far (`--only-finished` writes it without running anything).

Written to bench/results/elpv_transfer.json: per backbone and settings, the study's rows
(mean ± std per budget), every cell (accuracies, blessing, labels, seconds), and the
load average when it was written; beside them the published and reference figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "configs/elpv_imagenet.yaml"
OUT = ROOT / "bench" / "results" / "elpv_transfer.json"
BACKBONES = {
    "mobilenet_v1": ["model.architecture=mobilenet_v1",
                     "model.weights=data/weights/mobilenet_v1_imagenet.h5"],
    "efficientnet_lite0": ["model.architecture=efficientnet_lite0",
                           "model.weights=data/weights/efficientnet_lite0_imagenet.h5"],
}
REFERENCES = {
    "paper_vgg19_fine_tuned_1968_labels": 0.8842,
    "paper_svm_hand_made_features_1968_labels": 0.8244,
    "always_functional": 451 / 656,
    # Issue #25: frozen ImageNet MobileNetV1 features at 224 px + logistic regression, 3 seeds.
    "linear_probe_mobilenet_v1_224": {"100": 0.795, "250": 0.836, "500": 0.824, "1968": 0.851},
}


def study_id(backbone: str, sets: list[str]) -> str:
    """A readable id per backbone and extra settings, so each resumes on its own."""
    suffix = "-".join(s.replace("=", "_").replace(".", "_") for s in sets)
    return f"elpv-{backbone}{'-' + suffix if suffix else ''}"[:100].replace("/", "_")


def run_study(backbone: str, budgets: list[int], seeds: list[int], sets: list[str]) -> Path:
    """The study's folder, after running (or resuming) it."""
    name = study_id(backbone, sets)
    overrides = [arg for item in [*BACKBONES[backbone], *sets] for arg in ("--set", item)]
    subprocess.run([sys.executable, "-m", "pipeline.cli", "study", "--config", CONFIG,
                    *overrides, "--budgets", *map(str, budgets), "--seeds", *map(str, seeds),
                    "--id", name], cwd=ROOT, check=True)
    return ROOT / "runs" / "elpv-imagenet" / "studies" / name


def study_results(study_dir: Path) -> dict:
    study = json.loads((study_dir / "study.json").read_text())
    return {"rows": study["rows"], "cells": study["cells"],
            "load_average_1min": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", choices=sorted(BACKBONES),
                        default=sorted(BACKBONES))
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 250, 500, 1000, 1968])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="More config overrides for every run (part of the study id).")
    parser.add_argument("--only-finished", action="store_true",
                        help="Write the results of the studies' finished cells; run nothing.")
    args = parser.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {"references": REFERENCES,
                                                                 "studies": {}}
    for backbone in args.backbones:
        name = study_id(backbone, args.set)
        study_dir = ROOT / "runs" / "elpv-imagenet" / "studies" / name
        if not args.only_finished:
            run_study(backbone, args.budgets, args.seeds, args.set)
        if (study_dir / "study.json").exists():
            results["studies"][name] = {"backbone": backbone, "settings": args.set,
                                        **study_results(study_dir)}
            OUT.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
