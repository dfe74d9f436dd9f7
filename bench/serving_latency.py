"""Latency and throughput of a pushed SavedModel through its raw-bytes signature.

Requests are PNG-encoded Fashion-MNIST test images sent to `serving_raw` (decode, resize and
scale by the Transform graph, then the classifier), in-process, as TensorFlow Serving would
run the graph. The reference, measured in the same run on the same images: the model's Keras
classifier alone on already-decoded float tensors, i.e. what serving would cost without
shipping the preprocessing inside the model.

    .venv/bin/python bench/serving_latency.py --model-dir serving/fashion-mnist-ab
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import statistics
import sys
import time
from typing import Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from PIL import Image  # noqa: E402

from bench.bench_io import save_json  # noqa: E402
from pipeline.predict import RAW_SIGNATURE, resolve_model_dir  # noqa: E402

TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def test_images(count: int) -> np.ndarray:
    with gzip.open(TEST_IMAGES) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count]


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def call_seconds(call: Callable[[int], object], calls: int, warmup: int = 5) -> list[float]:
    """Wall-clock of `call(i)` for i in range(calls), after a few untimed warm-up calls."""
    for i in range(warmup):
        call(i)
    seconds = []
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        seconds.append(time.perf_counter() - start)
    return seconds


def latency(call: Callable[[int], object], calls: int) -> dict:
    ms = np.array(call_seconds(call, calls)) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def throughput(call: Callable[[int], object], batch: int, calls: int) -> float:
    """Images per second: batch / median seconds per call."""
    return batch / statistics.median(call_seconds(call, calls))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", default="serving/fashion-mnist-ab",
                        help="a SavedModel, or a serving dir (its latest version is used)")
    parser.add_argument("--requests", type=int, default=1000, help="batch-1 calls timed")
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--batch-calls", type=int, default=30)
    parser.add_argument("--out", default="bench/results/serving_latency.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    model_dir = resolve_model_dir(args.model_dir)
    raw = tf.saved_model.load(model_dir).signatures[RAW_SIGNATURE]
    classifier = keras.models.load_model(model_dir)
    reference = tf.function(lambda x: classifier(x, training=False))
    pixels = test_images(max(args.batches + [args.requests]))
    encoded = np.array([png(image) for image in pixels], dtype=object)
    floats = (pixels.astype(np.float32) / 255.0)[..., None]

    def requests(batch: int, source: np.ndarray) -> Callable[[int], tf.Tensor]:
        chunks = [tf.constant(source[i:i + batch])
                  for i in range(0, len(source) - batch + 1, batch)]
        return lambda i: chunks[i % len(chunks)]

    results: dict = {"model_dir": model_dir, "load_average_1min": os.getloadavg()[0]}
    for name, call, source in (
            ("serving_raw", lambda x: raw(image_bytes=x), encoded),
            ("keras_on_decoded_tensors", reference, floats)):
        one = requests(1, source)
        entry = {"batch_1": latency(lambda i: call(one(i)), args.requests)}
        for batch in args.batches:
            some = requests(batch, source)
            entry[f"batch_{batch}_images_per_s"] = throughput(lambda i: call(some(i)), batch,
                                                              args.batch_calls)
        results[name] = entry
        print(name, json.dumps(entry), flush=True)
    raw_p50 = results["serving_raw"]["batch_1"]["p50_ms"]
    results["p50_ratio_raw_to_reference"] = (
        raw_p50 / results["keras_on_decoded_tensors"]["batch_1"]["p50_ms"])
    save_json(args.out, results)


if __name__ == "__main__":
    main()
