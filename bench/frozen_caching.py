"""Frozen phase with and without frozen-layer caching, through the Trainer's own code.

`trainer.phases.frozen_phase` trains a new head on a frozen base twice per repeat: on cached
base outputs (`cache_frozen_features: true`, the default) and on images every epoch. Data:
Fashion-MNIST task B (sandal vs shirt), the label budget's worth of training images and the
eval images, resized to the architecture's input (96x96x3 for MobileNetV2). Same epochs, same
seed; reported: median seconds of each (the runs interleave), the speedup, and the eval
accuracy each head reaches (caching must not cost accuracy).

    .venv/bin/python bench/frozen_caching.py --architecture cnn --out bench/results/caching_cnn.json
    .venv/bin/python bench/frozen_caching.py --architecture mobilenet_v2 --size 96 --channels 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.plain_keras_reference import load_data, stratified_sample  # noqa: E402
from bench.bench_io import save_json  # noqa: E402
from trainer.architectures import build_base, reusable_layers  # noqa: E402
from trainer.image_inputs import Splits  # noqa: E402
from trainer.module import classifier, pretrained_base  # noqa: E402
from trainer.options import ModelConfig, PhaseConfig, TrainerConfig, TrainingConfig  # noqa: E402
from trainer.phases import frozen_phase  # noqa: E402


def resized(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """(n, 28, 28, 1) in [0, 1] -> (n, size, size, channels)."""
    out = tf.image.resize(images, (size, size)).numpy()
    return np.repeat(out, channels, axis=-1) if channels > 1 else out


def splits(train: tuple, evaluation: tuple, batch_size: int, seed: int) -> Splits:
    """In-memory datasets shaped like the Trainer's (shuffled train, ordered eval)."""
    train_ds = tf.data.Dataset.from_tensor_slices(train).shuffle(
        len(train[1]), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return Splits(train=train_ds,
                  eval=tf.data.Dataset.from_tensor_slices(evaluation).batch(batch_size))


def one_frozen_phase(config: TrainerConfig, shape: tuple, data: Splits,
                     base_model: str | None) -> tuple[float, float]:
    """Seconds of the frozen phase on a fresh copy of the base (pretrained from `base_model`,
    a pretrain Trainer's Model artifact, or random), and the eval accuracy after it."""
    tf.keras.utils.set_random_seed(config.seed)
    base = (pretrained_base(config.model, shape, base_model) if base_model
            else build_base(config.model, shape))
    model, head = classifier(base, config)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        frozen_phase(model, base, head, len(reusable_layers(base)), data, config.training, run_dir,
                     config.seed)
        seconds = time.perf_counter() - start
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return seconds, float(model.evaluate(data.eval, verbose=0)[1])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--architecture", default="cnn")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5, help="the default config's frozen epochs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-model", help="a pretrain Trainer's Model artifact URI; without "
                        "it the base is random (timings hold, accuracies are chance)")
    parser.add_argument("--out", default="bench/results/frozen_caching.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    raw = load_data(quick=False)
    picked = stratified_sample(raw.b_pool[1], raw.b_pool_index, args.budget, args.seed)
    train = (resized(raw.b_pool[0][picked], args.size, args.channels), raw.b_pool[1][picked])
    evaluation = (resized(raw.b_eval[0], args.size, args.channels), raw.b_eval[1])
    shape = (args.size, args.size, args.channels)
    results: dict = {"config": vars(args), "train_images": len(train[1]),
                     "eval_images": len(evaluation[1]), "seconds": {}, "eval_accuracy": {}}
    for _ in range(args.repeats):
        for cached in (False, True):  # interleaved: load from other work hits both alike
            training = TrainingConfig(frozen=PhaseConfig(epochs=args.epochs, learning_rate=3e-3),
                                      cache_frozen_features=cached, reduce_lr_patience=None)
            config = TrainerConfig(role="transfer", model=ModelConfig(
                architecture=args.architecture), training=training,
                label_names=["Sandal", "Shirt"], seed=args.seed)
            seconds, accuracy = one_frozen_phase(config, shape,
                                                 splits(train, evaluation, 32, args.seed),
                                                 args.base_model)
            name = "cached" if cached else "uncached"
            results["seconds"].setdefault(name, []).append(seconds)
            results["eval_accuracy"].setdefault(name, []).append(accuracy)
            print(f"{name}: {seconds:.2f} s, eval accuracy {accuracy:.4f}", flush=True)
    medians = {name: statistics.median(times) for name, times in results["seconds"].items()}
    results.update(median_seconds=medians, speedup=medians["uncached"] / medians["cached"],
                   load_average_1min=os.getloadavg()[0])
    save_json(args.out, results)
    print(f"speedup {results['speedup']:.2f}x")


if __name__ == "__main__":
    main()
