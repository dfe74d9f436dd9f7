"""What each input resolution costs and buys on ELPV, per ImageNet backbone; and the
frozen phase with and without frozen-layer caching.

On the real ELPV cells (data/elpv/, split as the pipeline splits them: the csv manifest's
fixed 656-cell test split), for each backbone and resolution, side by side in one process:

- milliseconds per image of one forward pass (what the frozen-layer cache costs once) and of
  one training step of every layer (what each fine-tuning or from-scratch epoch costs), batch 32;
- what the frozen ImageNet features are worth: test accuracy of a logistic regression on
  them (scikit-learn, standardised, C = 0.1) with 500 labels (seeds 1-3) and with all 1,968;
- at the config's resolution: `trainer.phases.frozen_phase` on 400 + 100 labelled cells for
  10 epochs, cached and not, and each one's eval accuracy.

    .venv/bin/python bench/elpv_costs.py   # → bench/results/elpv_costs.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from bench.bench_io import save_json  # noqa: E402
from components.image_example_gen.csv_manifest import read_manifest, split_rows  # noqa: E402
from components.image_example_gen.sampling import stratified_quotas  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from trainer.architectures import build_base, count_reused  # noqa: E402
from trainer.image_inputs import Splits  # noqa: E402
from trainer.module import classifier  # noqa: E402
from trainer.options import ModelConfig, TrainerConfig  # noqa: E402
from trainer.phases import compile_for, frozen_phase  # noqa: E402

CONFIG = "configs/elpv_imagenet.yaml"
WEIGHTS = {"mobilenet_v1": "data/weights/mobilenet_v1_imagenet.h5",
           "efficientnet_lite0": "data/weights/efficientnet_lite0_imagenet.h5"}
BATCH = 32


def load_cells(size: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Every cell at size x size as RGB in [-1, 1], its label, and the split's indices."""
    dataset = load_config(CONFIG).target
    manifest = read_manifest(dataset.path, dataset.manifest, dataset)
    splits = split_rows(manifest, dataset)
    images = np.stack([np.asarray(Image.open(os.path.join(dataset.path, row.path)).convert(
        "RGB").resize((size, size), Image.BILINEAR), np.float32) / 127.5 - 1
        for row in manifest.rows])
    labels = np.array([manifest.class_names.index(row.class_name) for row in manifest.rows])
    index = {split: np.array([i for i, row in enumerate(manifest.rows)
                              if splits[row.path] == split]) for split in ("train", "eval", "test")}
    return images, labels, index


def sample(pool: np.ndarray, labels: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """A stratified random sample of `budget` indices of `pool`."""
    rng = np.random.default_rng(seed)
    counts = {int(c): int((labels[pool] == c).sum()) for c in np.unique(labels[pool])}
    quotas = stratified_quotas(counts, budget)
    return np.concatenate([rng.choice(pool[labels[pool] == c], quotas[c], replace=False)
                           for c in counts])


def ms_per_image(backbone: str, size: int, images: np.ndarray) -> dict[str, float]:
    """Forward and all-layer training step, batch 32, after a warm-up batch."""
    base = build_base(ModelConfig(architecture=backbone), (size, size, 3), WEIGHTS[backbone])
    model, _ = classifier(base, _trainer_config(backbone))
    compile_for(model, "adam", 1e-4)
    batch, labels = images[:BATCH], np.zeros(BATCH)
    base.predict_on_batch(batch)
    model.train_on_batch(batch, labels)
    started = time.perf_counter()
    for _ in range(3):
        base.predict_on_batch(batch)
    forward = (time.perf_counter() - started) / (3 * BATCH)
    started = time.perf_counter()
    for _ in range(3):
        model.train_on_batch(batch, labels)
    train = (time.perf_counter() - started) / (3 * BATCH)
    return {"forward_ms": round(forward * 1000, 2), "train_step_ms": round(train * 1000, 2)}


def probe(features: np.ndarray, labels: np.ndarray, index: dict[str, np.ndarray]) -> dict:
    """Test accuracy of a logistic regression on frozen features."""
    pool = np.concatenate([index["train"], index["eval"]])
    test = index["test"]

    def accuracy(chosen: np.ndarray) -> float:
        fit = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        fit.fit(features[chosen], labels[chosen])
        return float((fit.predict(features[test]) == labels[test]).mean())

    return {"500": [accuracy(sample(pool, labels, 500, seed)) for seed in (1, 2, 3)],
            "1968": accuracy(pool)}


def _trainer_config(backbone: str) -> TrainerConfig:
    config = load_config(CONFIG, [f"model.architecture={backbone}",
                                  f"model.weights={WEIGHTS[backbone]}"])
    return TrainerConfig.for_role("transfer", config.model, config.training,
                                  ["functional", "defective"], seed=1)


def frozen_phase_seconds(backbone: str, size: int, images: np.ndarray, labels: np.ndarray,
                         index: dict[str, np.ndarray]) -> dict[str, dict]:
    """The Trainer's frozen phase on 400 + 100 cells, cached and not."""
    config = _trainer_config(backbone)
    train, eval_ = (sample(index["train"], labels, 400, 1), sample(index["eval"], labels, 100, 1))

    def dataset(chosen: np.ndarray, shuffle: bool) -> tf.data.Dataset:
        data = tf.data.Dataset.from_tensor_slices((images[chosen], labels[chosen]))
        return (data.shuffle(len(chosen), seed=1) if shuffle else data).batch(BATCH)

    results = {}
    for cache in (True, False):
        training = config.training.model_copy(update={"cache_frozen_features": cache})
        tf.keras.utils.set_random_seed(1)
        base = build_base(config.model, (size, size, 3), WEIGHTS[backbone])
        model, head = classifier(base, config)
        splits = Splits(train=dataset(train, True), eval=dataset(eval_, False))
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            frozen_phase(model, base, head, count_reused(base, "all"), splits, training,
                         run_dir, 1)
        compile_for(model, "adam", 1e-4)
        _, accuracy = model.evaluate(splits.eval, verbose=0)
        results["cached" if cache else "uncached"] = {
            "seconds": round(time.perf_counter() - started, 1), "eval_accuracy": accuracy}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=sorted(WEIGHTS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192, 224])
    parser.add_argument("--out", default="bench/results/elpv_costs.json")
    args = parser.parse_args()
    config_size = load_config(CONFIG).image.height
    results: dict = {"load_average_1min_before": os.getloadavg()[0], "config_size": config_size,
                     "backbones": {}}
    for size in args.sizes:
        images, labels, index = load_cells(size)
        for backbone in args.backbones:
            row = ms_per_image(backbone, size, images)
            base = build_base(ModelConfig(architecture=backbone), (size, size, 3),
                              WEIGHTS[backbone])
            features = base.predict(images, batch_size=256, verbose=0)
            row["linear_probe_test_accuracy"] = probe(features, labels, index)
            if size == config_size:
                row["frozen_phase"] = frozen_phase_seconds(backbone, size, images, labels, index)
            results["backbones"].setdefault(backbone, {})[str(size)] = row
            print(backbone, size, row, flush=True)
            save_json(args.out, results)


if __name__ == "__main__":
    main()
