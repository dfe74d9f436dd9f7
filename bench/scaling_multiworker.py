"""MultiWorkerMirroredStrategy overhead on one machine: 1 process vs 2 worker processes.

Each run trains the project's cnn classifier (trainer/architectures.py, strategy from
trainer/devices.py) on the first 2,000 Fashion-MNIST images for a few epochs with the same
global batch; workers find each other through TF_CONFIG on 127.0.0.1. Reported: the median
epoch time after the first (which traces the graphs), per worker count, median over repeats.

    .venv/bin/python bench/scaling_multiworker.py --repeats 3 --out /tmp/multiworker.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)

from tests.test_scaling_multiworker import free_ports, wait_all  # noqa: E402

TIMEOUT_SECONDS = 600

_WORKER = textwrap.dedent("""
    import json, os, sys, time
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras as keras
    from tests.trainer_fixtures import fashion_mnist
    from trainer.architectures import build_base
    from trainer.devices import choose_strategy, make_deterministic
    from trainer.module import classifier
    from trainer.options import TrainerConfig

    epochs, batch_size = int(sys.argv[1]), int(sys.argv[2])
    strategy = choose_strategy()
    make_deterministic(0)
    config = TrainerConfig.model_validate({"role": "scratch", "model": {"architecture": "cnn"},
                                           "training": {}, "label_names": list("0123456789")})
    images, labels = fashion_mnist()
    data = tf.data.Dataset.from_tensor_slices((images[..., None] / 255.0, labels))
    data = data.shuffle(len(labels), seed=0).batch(batch_size)
    with strategy.scope():
        model, _ = classifier(build_base(config.model, (28, 28, 1)), config)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()
        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    times = []
    model.fit(data, epochs=epochs, verbose=0, callbacks=[EpochTimes()])
    print(json.dumps({"epoch_seconds": times}))
""")


def run(workers: int, epochs: int, batch_size: int) -> list[float]:
    """Epoch times of worker 0 in a cluster of `workers` processes (1: no TF_CONFIG)."""
    ports = free_ports(workers)
    processes = []
    for index in range(workers):
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("TF_CONFIG", None)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({
                "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(epochs), str(batch_size)], cwd=PROJECT_ROOT,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    codes = wait_all(processes, TIMEOUT_SECONDS)
    if codes != [0] * workers:
        raise RuntimeError(f"workers exited with {codes}")
    return json.loads(processes[0].stdout.read().strip().splitlines()[-1])["epoch_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="JSON results file")
    args = parser.parse_args()
    results: dict[int, list[float]] = {1: [], 2: []}
    load_before = os.getloadavg()
    for repeat in range(args.repeats):
        for workers in results:
            start = time.perf_counter()
            epochs = run(workers, args.epochs, args.batch_size)
            # The first epoch traces the graphs: steady state is the rest.
            results[workers].append(statistics.median(epochs[1:]))
            print(workers, repeat, [round(t, 2) for t in epochs],
                  f"wall {time.perf_counter() - start:.0f}s", flush=True)
    report = {"images": 2000, "global_batch": args.batch_size, "cpus": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "median_epoch_seconds": {w: round(statistics.median(t), 2)
                                       for w, t in results.items()},
              "runs": results}
    print(json.dumps(report["median_epoch_seconds"]))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=1)


if __name__ == "__main__":
    main()
