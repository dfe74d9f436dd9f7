"""Plain-Keras reference for Fashion-MNIST transfer experiments (Géron, ch. 11, by default).

No TFX and no project imports: this is what the pipeline's accuracies and timings are
compared against. Task B = the `--target` classes (default sandal vs shirt), task A = the
other classes of Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # must precede the TensorFlow import

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
EVAL_FRACTION = 1 / 12
BATCH = 32
QUICK_SIZES = {"a_train": 2000, "a_eval": 500, "b_eval": 200, "test": 400}

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Recipe:
    """Optimizer, learning rates, epochs and early-stopping patience of every stage."""

    optimizer: str
    pretrain: tuple[float, int, int | None]  # (learning rate, epochs, patience)
    frozen: tuple[float, int, int | None]
    fine_tune: tuple[float, int, int | None]
    scratch: tuple[float, int, int | None]
    scratch_warmup: int = 0  # epochs before early stopping may judge the scratch model
    reduce_lr_patience: int | None = None  # halve the rate after this many flat epochs


RECIPES = {
    # The pipeline's embedded default (configs/fashion_mnist_ab.yaml).
    "default": Recipe("adam", (1e-3, 10, 3), (3e-3, 5, None), (1e-4, 30, 5), (3e-3, 35, 5), 10, 2),
    # Géron's chapter-11 notebook: SGD 1e-3 everywhere, 20 epochs, transfer = 4 frozen + 16.
    "book": Recipe("sgd", (1e-3, 20, None), (1e-3, 4, None), (1e-3, 16, None), (1e-3, 20, None)),
}
QUICK_RECIPE = Recipe("adam", (1e-3, 1, None), (3e-3, 1, None), (1e-4, 1, None), (3e-3, 1, None))


@dataclass
class Data:
    a_train: Arrays
    a_train_index: np.ndarray  # their indices in the train file: a source budget ranks these
    a_eval: Arrays
    b_pool: Arrays  # B's training split before the label budget
    b_pool_index: np.ndarray  # their indices in the train file: the budget ranks these
    b_eval: Arrays
    b_eval_index: np.ndarray  # their indices in the train file: an eval budget ranks these
    test: Arrays


def read_idx(kind: str, role: str) -> np.ndarray:
    """One IDX file as uint8: images (n, 28, 28) or labels (n,)."""
    suffix = "images-idx3" if kind == "images" else "labels-idx1"
    with gzip.open(f"{DATA_DIR}/{role}-{suffix}-ubyte.gz") as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28) if kind == "images" \
        else np.frombuffer(raw, np.uint8, offset=8)


def unit_hash(text: str) -> float:
    # sha256, not hash(): stable across processes; same key scheme as the pipeline's IDX reader.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def scaled(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> float32 (n, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., None]


def load_data(quick: bool, target: tuple[str, ...] = ("Sandal", "Shirt")) -> Data:
    """Task A (the other classes) and task B (`target`, labelled in that order) splits;
    eval = train indices whose hash falls below 1/12."""
    x, y = read_idx("images", "train"), read_idx("labels", "train")
    held_out = np.array([unit_hash(f"train#{i}") < EVAL_FRACTION for i in range(len(y))])
    b_ids = [FASHION.index(name) for name in target]
    a_ids = [c for c in range(len(FASHION)) if c not in b_ids]
    relabel = np.zeros(len(FASHION), np.int64)  # original class -> label of its task
    relabel[a_ids], relabel[b_ids] = np.arange(len(a_ids)), np.arange(len(b_ids))
    is_b = np.isin(y, b_ids)
    a_train, a_eval = (~is_b & ~held_out), (~is_b & held_out)
    xt, yt = read_idx("images", "t10k"), read_idx("labels", "t10k")
    t = np.isin(yt, b_ids)
    data = Data(
        a_train=(scaled(x[a_train]), relabel[y[a_train]]),
        a_train_index=np.flatnonzero(a_train),
        a_eval=(scaled(x[a_eval]), relabel[y[a_eval]]),
        b_pool=(scaled(x[is_b & ~held_out]), relabel[y[is_b & ~held_out]]),
        b_pool_index=np.flatnonzero(is_b & ~held_out),
        b_eval=(scaled(x[is_b & held_out]), relabel[y[is_b & held_out]]),
        b_eval_index=np.flatnonzero(is_b & held_out),
        test=(scaled(xt[t]), relabel[yt[t]]))
    if quick:  # deterministic prefixes: enough to exercise every code path
        for name, n in QUICK_SIZES.items():
            setattr(data, name, tuple(a[:n] for a in getattr(data, name)))
        data.a_train_index = data.a_train_index[:QUICK_SIZES["a_train"]]
    return data


def stratified_sample(labels: np.ndarray, index: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """Positions of `budget` examples: per-class quotas by largest remainder, and per class the
    smallest sha256("seed:train#i") ranks, the pipeline's rule, so both see the same images."""
    classes, counts = np.unique(labels, return_counts=True)
    quotas = budget * counts // counts.sum()
    order = sorted(range(len(classes)), key=lambda i: -(budget * counts[i] % counts.sum()))
    for i in order[:budget - quotas.sum()]:
        quotas[i] += 1
    picked = []
    for cls, quota in zip(classes, quotas):
        members = np.flatnonzero(labels == cls)
        ranks = [(unit_hash(f"{seed}:train#{index[m]}"), m) for m in members]
        picked.append([m for _, m in sorted(ranks)[:quota]])
    return np.sort(np.concatenate(picked))


def build_base(architecture: str) -> keras.Model:
    """The reusable feature extractor, without any output layer."""
    inputs = keras.Input((28, 28, 1))
    if architecture == "cnn":
        x = inputs
        for filters, pool in ((32, True), (64, True), (128, False)):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)  # as trainer/architectures.py
            x = keras.layers.ReLU()(x)
            if pool:
                x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
    else:
        x = keras.layers.Flatten()(inputs)
        for units in (300, 100, 50, 50, 50):
            x = keras.layers.Dense(units, activation="selu", kernel_initializer="lecun_normal")(x)
    return keras.Model(inputs, x, name="base")


def with_head(base: keras.Model, classes: int) -> keras.Model:
    """base -> Dense softmax. A frozen BatchNorm layer normalises with its moving statistics."""
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(base(inputs)))


def fit(model: keras.Model, stage: tuple[float, int, int | None], train: Arrays, val: Arrays,
        optimizer: str = "adam", warmup: int = 0, reduce_lr: int | None = None) -> int:
    """Compile and train for one (learning rate, epochs, patience) stage; returns the number
    of epochs actually run."""
    lr, epochs, patience = stage
    make = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[optimizer]
    model.compile(make(lr), "sparse_categorical_crossentropy", ["accuracy"])
    callbacks = [keras.callbacks.EarlyStopping(
        "val_loss", patience=patience, start_from_epoch=warmup,
        restore_best_weights=True)] if patience else []
    if reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5,
                                                           patience=reduce_lr))
    history = model.fit(*train, batch_size=BATCH, epochs=epochs, validation_data=val,
                        callbacks=callbacks, verbose=0)
    return len(history.history["loss"])


def accuracy(model: keras.Model, data: Arrays) -> float:
    """Top-1 accuracy on `data`."""
    return float(model.evaluate(*data, batch_size=256, verbose=0)[1])


def timed(stage: Callable[[], object]) -> tuple[object, float]:
    """The stage's result and its wall-clock seconds."""
    start = time.perf_counter()
    result = stage()
    return result, time.perf_counter() - start


def n_classes(arrays: Arrays) -> int:
    return len(np.unique(arrays[1]))


def pretrain(arch: str, data: Data, recipe: Recipe) -> tuple[keras.Model, dict]:
    """Model A on the source classes; returns its base and a result record."""
    base = build_base(arch)
    model = with_head(base, n_classes(data.a_train))
    ran, seconds = timed(lambda: fit(model, recipe.pretrain, data.a_train, data.a_eval,
                                     recipe.optimizer, reduce_lr=recipe.reduce_lr_patience))
    return base, {"seconds": seconds, "epochs": ran, "eval_accuracy": accuracy(model, data.a_eval)}


def copy_base(base: keras.Model) -> keras.Model:
    # Fine-tuning changes the base's weights; model A is reused across budgets, so copy.
    clone = keras.models.clone_model(base)
    clone.set_weights(base.get_weights())
    return clone


def thaw_top(base: keras.Model, unfreeze: int | None) -> None:
    """Make the top `unfreeze` layers with weights of the base trainable (None: all of them),
    the pipeline's count: BatchNorm layers are not counted and stay frozen."""
    base.trainable = True
    weighted = [layer for layer in base.layers
                if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    count = len(weighted) if unfreeze is None else min(unfreeze, len(weighted))
    thawed = weighted[len(weighted) - count:]
    for layer in base.layers:
        layer.trainable = layer in thawed


def transfer_and_scratch(arch: str, base_a: keras.Model, train: Arrays, val: Arrays,
                         data: Data, recipe: Recipe, unfreeze: int | None = None) -> dict:
    """Frozen + fine-tune phases on a copy of base A, then the scratch baseline; both
    validate on `val` (the eval split, or its budgeted sample)."""
    base = copy_base(base_a)
    model = with_head(base, n_classes(data.test))
    base.trainable = False
    ran_f, t_f = timed(lambda: fit(model, recipe.frozen, train, val, recipe.optimizer,
                                   reduce_lr=recipe.reduce_lr_patience))
    thaw_top(base, unfreeze)  # fit() recompiles, which the trainable change needs
    ran_t, t_t = timed(lambda: fit(model, recipe.fine_tune, train, val,
                                   recipe.optimizer, reduce_lr=recipe.reduce_lr_patience))
    transfer_acc = accuracy(model, data.test)
    scratch = with_head(build_base(arch), n_classes(data.test))
    ran_s, t_s = timed(lambda: fit(scratch, recipe.scratch, train, val,
                                   recipe.optimizer, recipe.scratch_warmup,
                                   recipe.reduce_lr_patience))
    return {"transfer_accuracy": transfer_acc, "scratch_accuracy": accuracy(scratch, data.test),
            "seconds": {"frozen": t_f, "fine_tune": t_t, "scratch": t_s},
            "epochs": {"frozen": ran_f, "fine_tune": ran_t, "scratch": ran_s}}


def frozen_uncached(base_a: keras.Model, train: Arrays, val: Arrays, stage: tuple) -> None:
    base = copy_base(base_a)
    model = with_head(base, n_classes(val))
    base.trainable = False
    fit(model, stage, train, val)


def frozen_cached(base_a: keras.Model, train: Arrays, val: Arrays, stage: tuple) -> None:
    # Bottleneck caching: the frozen base is a fixed function, so run it once per image.
    features = [(base_a.predict(x, batch_size=256, verbose=0), y) for x, y in (train, val)]
    head = keras.Sequential([keras.Input(features[0][0].shape[1:]),
                             keras.layers.Dense(n_classes(val), activation="softmax")])
    fit(head, stage, features[0], features[1])


def time_caching(base_a: keras.Model, train: Arrays, val: Arrays, stage: tuple,
                 repeats: int = 3) -> dict:
    """Median wall-clock of the frozen phase without / with bottleneck caching."""
    runs = {name: [timed(lambda f=f: f(base_a, train, val, stage))[1] for _ in range(repeats)]
            for name, f in (("uncached", frozen_uncached), ("cached", frozen_cached))}
    medians = {name: statistics.median(times) for name, times in runs.items()}
    return {"seconds": runs, "median_uncached": medians["uncached"],
            "median_cached": medians["cached"],
            "speedup": medians["uncached"] / medians["cached"]}


def summarize(per_seed: dict) -> dict:
    """Mean ± std of each accuracy and the error ratio scratch / transfer (of mean errors)."""
    out = {}
    for kind in ("transfer", "scratch"):
        values = [r[f"{kind}_accuracy"] for r in per_seed.values()]
        out[kind] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    transfer_error = 1 - out["transfer"]["mean"]
    out["error_ratio"] = (1 - out["scratch"]["mean"]) / transfer_error if transfer_error else None
    return out


def print_table(results: dict) -> None:
    print(f"\n{'budget':>7} {'unfreeze':>8} {'transfer':>17} {'scratch':>17} {'err ratio':>9} "
          f"{'cache x':>8}")
    for key, entry in results["runs"].items():
        s = entry["summary"]
        ratio = f"{s['error_ratio']:.2f}" if s["error_ratio"] is not None else "inf"
        cache = results["caching"].get(str(entry["budget"]), {}).get("speedup")
        print(f"{entry['budget']:>7} {entry['unfreeze']:>8} "
              f"{s['transfer']['mean']:.4f} ± {s['transfer']['std']:.4f} "
              f"{s['scratch']['mean']:.4f} ± {s['scratch']['std']:.4f} {ratio:>9} "
              f"{'-' if cache is None else f'{cache:.2f}':>8}")


def run(args: argparse.Namespace) -> dict:
    """Pretrain once per seed, then transfer + scratch for every budget and unfreeze count."""
    tf.config.experimental.enable_op_determinism()
    data = load_data(args.quick, tuple(args.target))
    recipe = QUICK_RECIPE if args.quick else RECIPES[args.recipe]
    if args.source_budget is not None:  # the pipeline's source.label_budget
        picked = stratified_sample(data.a_train[1], data.a_train_index, args.source_budget,
                                   args.seeds[0])
        data.a_train = tuple(a[picked] for a in data.a_train)
    sizes = {k: len(v[1]) for k, v in vars(data).items() if isinstance(v, tuple)}
    combos = [(b, u) for b in args.budgets for u in args.unfreeze]
    results = {"config": {**vars(args), "recipe": vars(recipe), "sizes": sizes}, "pretrain": {},
               "runs": {f"{b}/{u}": {"budget": b, "unfreeze": u, "seeds": {}} for b, u in combos},
               "caching": {}}
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        base_a, results["pretrain"][str(seed)] = pretrain(args.architecture, data, recipe)
        print(f"seed {seed}: pretrain {results['pretrain'][str(seed)]}", flush=True)
        pool = (data.b_pool[1], data.b_pool_index)
        val = data.b_eval
        if args.eval_budget is not None:  # the pipeline's target.eval_label_budget
            kept = stratified_sample(data.b_eval[1], data.b_eval_index, args.eval_budget, seed)
            val = (data.b_eval[0][kept], data.b_eval[1][kept])
        for budget, unfreeze in combos:
            picked = stratified_sample(*pool, budget, seed)
            train = (data.b_pool[0][picked], data.b_pool[1][picked])
            keras.utils.set_random_seed(seed)  # a result must not depend on earlier ones
            record = transfer_and_scratch(args.architecture, base_a, train, val, data, recipe,
                                          None if unfreeze == "all" else int(unfreeze))
            record["labels"] = {"train": len(train[1]), "eval": len(val[1]),
                                "test": len(data.test[1])}
            results["runs"][f"{budget}/{unfreeze}"]["seeds"][str(seed)] = record
            print(f"seed {seed} budget {budget} unfreeze {unfreeze}: {record}", flush=True)
            if args.time_caching and seed == args.seeds[0] and str(budget) not in \
                    results["caching"]:
                results["caching"][str(budget)] = time_caching(base_a, train, val,
                                                               recipe.frozen)
    for entry in results["runs"].values():
        entry["summary"] = summarize(entry["seeds"])
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--architecture", choices=("cnn", "dense"), default="cnn")
    parser.add_argument("--budget", "--budgets", dest="budgets", type=int, nargs="+",
                        default=[200], help="B training images (several: data-efficiency curve)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                        help="default: the pipeline's embedded config; book: Géron's SGD recipe")
    parser.add_argument("--unfreeze", nargs="+", default=["all"],
                        help="weighted base layers thawed for fine-tuning, from the top "
                        "('all' or numbers; several: the how-much-to-reuse table)")
    parser.add_argument("--target", nargs="+", default=["Sandal", "Shirt"], choices=FASHION,
                        metavar="CLASS", help="task B's classes in label order; task A is "
                        "the rest (default: Sandal Shirt)")
    parser.add_argument("--eval-budget", type=int,
                        help="task B eval images (stratified sample, as target.eval_label_budget; "
                        "default: the whole eval split)")
    parser.add_argument("--source-budget", type=int,
                        help="task A training images (stratified sample, as source.label_budget)")
    parser.add_argument("--time-caching", action="store_true",
                        help="also time the frozen phase with/without bottleneck caching")
    parser.add_argument("--quick", action="store_true", help="tiny subsets, 1 epoch per phase")
    parser.add_argument("--out", default="results.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    results = run(args)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
