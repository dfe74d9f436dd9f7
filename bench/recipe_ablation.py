"""Which transfer recipe earns its keep with few labels, measured with the pipeline's own
Trainer code (trainer.module's pretrain / transfer / scratch and trainer.phases) on in-memory
Fashion-MNIST, so that a variant measured here is what the config key gives in a run.

Data are cut as the pipeline cuts them (bench/plain_keras_reference.load_data: the hashed
eval split, seeded stratified train and eval budgets; the target's whole test split judges).
Each (source, seed) pretrains once, kept in --workdir for every variant and task. Each
(variant, task, seed) trains transfer and scratch on the same label sample and is written
to --out as it finishes; a rerun skips what --out holds, so a killed run resumes.
A variant is a list of `--set`-style overrides of the `model` and `training` sections.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.plain_keras_reference import Data, load_data, stratified_sample  # noqa: E402
from pipeline.config import apply_overrides  # noqa: E402
from trainer import module  # noqa: E402
from trainer.base_model_file import keras_model_path, save_keras_model  # noqa: E402
from trainer.devices import make_deterministic  # noqa: E402
from trainer.image_inputs import Splits  # noqa: E402
from trainer.options import ModelConfig, TrainerConfig, TrainingConfig  # noqa: E402

SHAPE = (28, 28, 1)
# name -> (target classes in label order, train labels, eval labels)
TASKS = {
    "shirt_tshirt_200": (("T-shirt/top", "Shirt"), 160, 40),
    "shirt_tshirt_50": (("T-shirt/top", "Shirt"), 40, 10),
    "shirt_tshirt_1000": (("T-shirt/top", "Shirt"), 800, 200),
    "footwear_100": (("Sandal", "Sneaker", "Ankle boot"), 80, 20),
    "sandal_shirt_200": (("Sandal", "Shirt"), 160, 40),
}
_FROZEN_100 = ["training.frozen.epochs=100", "training.frozen.early_stopping_patience=10"]
_FIXED_EPOCHS = ["training.fine_tune.early_stopping_patience=null",
                 "training.reduce_lr_patience=null"]
# What was tried on the way to a better default, each against today's defaults.
VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    # The frozen head gets ~500 optimizer steps on cached features instead of 25.
    "frozen_100": _FROZEN_100,
    "frozen_100_fine_tune_lr_1e-3": [*_FROZEN_100, "training.fine_tune.learning_rate=1e-3"],
    "frozen_100_flip": [*_FROZEN_100, "training.augmentation.flip=horizontal"],
    "frozen_100_dropout_0.5": [*_FROZEN_100, "model.dropout=0.5"],
    "frozen_100_reuse_2": [*_FROZEN_100, "model.reuse_layers=2"],
    "frozen_100_augment_fine_tune_60": [
        *_FROZEN_100, "training.augmentation.flip=horizontal",
        "training.augmentation.translation=0.1", "training.fine_tune.learning_rate=1e-3",
        "training.fine_tune.epochs=60", "training.fine_tune.early_stopping_patience=10"],
    # No early stopping and no learning-rate halving: the eval split steers nothing.
    "fixed_epochs": _FIXED_EPOCHS,
    "fixed_epochs_fine_tune_lr_1e-3": [*_FIXED_EPOCHS, "training.fine_tune.learning_rate=1e-3"],
}


def splits(train: tuple, evaluation: tuple, batch_size: int, seed: int) -> Splits:
    """In-memory datasets shaped like the Trainer's (shuffled train, ordered eval)."""
    train_ds = tf.data.Dataset.from_tensor_slices(train).shuffle(
        len(train[1]), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return Splits(train=train_ds,
                  eval=tf.data.Dataset.from_tensor_slices(evaluation).batch(batch_size))


def configs(overrides: list[str], role: str, labels: list[str], seed: int) -> TrainerConfig:
    """The Trainer config of `role` under a variant's overrides, as the pipeline builds it."""
    sections = apply_overrides({"model": {}, "training": {}}, overrides)
    return TrainerConfig.for_role(role, ModelConfig.model_validate(sections["model"]),
                                  TrainingConfig.model_validate(sections["training"]), labels,
                                  seed)


def sample(data: Data, train_budget: int, eval_budget: int, seed: int) -> tuple[tuple, tuple]:
    picked = stratified_sample(data.b_pool[1], data.b_pool_index, train_budget, seed)
    kept = stratified_sample(data.b_eval[1], data.b_eval_index, eval_budget, seed)
    return ((data.b_pool[0][picked], data.b_pool[1][picked]),
            (data.b_eval[0][kept], data.b_eval[1][kept]))


def accuracy(model, test: tuple) -> float:
    probabilities = model.predict(test[0], batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == test[1]))


def pretrained(data: Data, source: str, seed: int, workdir: str) -> str:
    """A pretrain Trainer's model dir for (source, seed), trained once with the defaults."""
    serving_dir = os.path.join(workdir, f"pretrain-{source}-{seed}", "Format-Serving")
    if os.path.exists(keras_model_path(serving_dir)):
        return serving_dir
    labels = [str(label) for label in range(len(np.unique(data.a_train[1])))]
    config = configs([], "pretrain", labels, seed)
    make_deterministic(seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        model = module.pretrain(config, SimpleNamespace(model_run_dir=run_dir),
                                splits(data.a_train, data.a_eval, 32, seed), SHAPE,
                                tf.distribute.get_strategy())
    save_keras_model(model, keras_model_path(serving_dir))
    print(f"pretrained {source} seed {seed} in {time.perf_counter() - started:.0f} s, eval "
          f"accuracy {accuracy(model, data.a_eval):.4f}", flush=True)
    return serving_dir


def run_cell(overrides: list[str], data: Data, task: str, seed: int, base_model: str) -> dict:
    """Transfer and scratch of one variant on one task and seed."""
    classes, train_budget, eval_budget = TASKS[task]
    train, evaluation = sample(data, train_budget, eval_budget, seed)
    result: dict = {"labels": {"train": len(train[1]), "eval": len(evaluation[1]),
                               "test": len(data.test[1])}}
    for role in ("transfer", "scratch"):
        config = configs(overrides, role, list(classes), seed)
        make_deterministic(seed, config.training.deterministic)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            fn_args = SimpleNamespace(model_run_dir=run_dir, base_model=base_model)
            model = getattr(module, role)(
                config, fn_args, splits(train, evaluation, config.training.batch_size, seed),
                SHAPE, tf.distribute.get_strategy())
        result[f"{role}_accuracy"] = accuracy(model, data.test)
        result[f"{role}_seconds"] = round(time.perf_counter() - started, 1)
    return result


def save_json(path: str, results: dict) -> None:
    """Whole or not at all, so a kill leaves the last finished cell readable."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(f"{path}.partial", "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)
    os.replace(f"{path}.partial", path)


def summarize(cells: dict) -> dict:
    """Per variant and task: mean ± std of both accuracies, per-seed error ratios, wins."""
    summary: dict = {}
    for variant, tasks in cells.items():
        for task, seeds in tasks.items():
            runs = list(seeds.values())
            ratios = [(1 - r["scratch_accuracy"]) / max(1 - r["transfer_accuracy"], 1e-9)
                      for r in runs]
            summary.setdefault(variant, {})[task] = {
                "seeds": len(runs),
                **{model: {"mean": statistics.fmean(r[f"{model}_accuracy"] for r in runs),
                           "std": statistics.pstdev(r[f"{model}_accuracy"] for r in runs)}
                   for model in ("transfer", "scratch")},
                "error_ratios": ratios, "min_error_ratio": min(ratios),
                "wins": sum(r["transfer_accuracy"] > r["scratch_accuracy"] for r in runs)}
    return summary


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help=f"of {list(VARIANTS)}, or NAME=KEY=VALUE,KEY=VALUE for a new one")
    parser.add_argument("--tasks", nargs="+", default=["shirt_tshirt_200"], choices=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--workdir", default="/tmp/tfx-transfer-recipes",
                        help="pretrained models, reused across variants and reruns")
    parser.add_argument("--out", default="bench/results/recipe_ablation.json")
    return parser.parse_args()


def variant_overrides(spec: str) -> tuple[str, list[str]]:
    name, _, overrides = spec.partition("=")
    if not overrides:
        return name, VARIANTS[name]
    return name, overrides.split(",")


def main() -> None:
    args = parse_args()
    results = {"variants": {}, "cells": {}}
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as file:
            results = json.load(file)
    data_by_task = {task: load_data(False, TASKS[task][0]) for task in args.tasks}
    for spec in args.variants:
        name, overrides = variant_overrides(spec)
        results["variants"][name] = overrides
        for task in args.tasks:
            source = "-".join(TASKS[task][0]).replace("/", "")
            for seed in args.seeds:
                cells = results["cells"].setdefault(name, {}).setdefault(task, {})
                if str(seed) in cells:
                    continue
                base_model = pretrained(data_by_task[task], source, seed, args.workdir)
                cells[str(seed)] = run_cell(overrides, data_by_task[task], task, seed,
                                            base_model)
                print(f"{name} {task} seed {seed}: {cells[str(seed)]}", flush=True)
                results["summary"] = summarize(results["cells"])
                save_json(args.out, results)
    for name, tasks in summarize(results["cells"]).items():
        for task, row in tasks.items():
            print(f"{name:<28} {task:<18} transfer {row['transfer']['mean']:.4f} ± "
                  f"{row['transfer']['std']:.4f}  scratch {row['scratch']['mean']:.4f} ± "
                  f"{row['scratch']['std']:.4f}  min error ratio {row['min_error_ratio']:.2f}"
                  f"  wins {row['wins']}/{row['seeds']}")


if __name__ == "__main__":
    main()
