"""Images per second through the Transform component versus a plain tf.data loop.

ImageExampleGen writes a Fashion-MNIST subset once (untimed). Then, interleaved `--repeats`
times on the same examples: TFX's Transform executor with the pipeline's preprocessing_fn
(in-memory Beam, as the default config runs it: analyze + transform train and eval, write
the transformed examples and the transform graph), and a plain `tf.data` loop that reads the
same train and eval files, decodes, resizes and scales the images in parallel and writes
them as tf.Examples too. Reported: median seconds and images/s of each, and their ratio.

    .venv/bin/python bench/transform_throughput.py --train 20000 --test 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from transform.features import IMAGE_KEY, LABEL_KEY  # noqa: E402
from tests import scaling_stages as stages  # noqa: E402
from bench.bench_io import add_subset_args, all_classes_config, save_json  # noqa: E402

SPLITS = ("train", "eval")


def plain_loop(examples_uri: str, out: str, size: int) -> int:
    """Decode, resize to size x size, scale to [0, 1] and write; returns images written."""
    files = [f for split in SPLITS
             for f in tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*"))]
    spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
            LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}

    def preprocess(record: tf.Tensor) -> tf.Tensor:
        parsed = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_image(parsed[IMAGE_KEY], channels=1, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (size, size)) / 255.0
        example = tf.py_function(_serialize, [image, parsed[LABEL_KEY]], tf.string)
        return example

    dataset = (tf.data.TFRecordDataset(files, "GZIP", num_parallel_reads=tf.data.AUTOTUNE)
               .map(preprocess, num_parallel_calls=tf.data.AUTOTUNE))
    count = 0
    with tf.io.TFRecordWriter(os.path.join(out, "transformed.gz"), "GZIP") as writer:
        for record in dataset.as_numpy_iterator():
            writer.write(record)
            count += 1
    return count


def _serialize(image: tf.Tensor, label: tf.Tensor) -> bytes:
    feature = {"image": tf.train.Feature(float_list=tf.train.FloatList(
                   value=image.numpy().ravel())),
               "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_subset_args(parser, train=20000)
    parser.add_argument("--out", default="bench/results/transform_throughput.json")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="transform_throughput_")
    try:
        config = all_classes_config(root, args.train, args.test)
        nodes = stages.local_nodes(config)
        context = stages.beam_context(os.path.join(root, "tmp"), stages.IN_MEMORY)
        examples = stages.run_example_gen(nodes["target_example_gen"], root, context)
        images = sum(len(stages.split_records(examples, split)) for split in SPLITS)
        seconds: dict[str, list[float]] = {"transform_component": [], "plain_tf_data": []}
        for repeat in range(args.repeats):
            out = os.path.join(root, f"run-{repeat}")
            seconds["transform_component"].append(timed(lambda: stages.run_transform(
                nodes["target_transform"], examples, os.path.join(out, "tfx"), context)))
            os.makedirs(os.path.join(out, "plain"))
            written = []
            seconds["plain_tf_data"].append(timed(lambda: written.append(
                plain_loop(examples.uri, os.path.join(out, "plain"), config.image.height))))
            assert written == [images], (written, images)
            shutil.rmtree(out)
            print(repeat, {k: round(v[-1], 1) for k, v in seconds.items()}, flush=True)
        medians = {k: statistics.median(v) for k, v in seconds.items()}
        report = {"images": images, "repeats": args.repeats, "seconds": seconds,
                  "median_seconds": medians,
                  "images_per_s": {k: images / v for k, v in medians.items()},
                  "ratio_transform_to_plain": medians["transform_component"]
                  / medians["plain_tf_data"], "load_average_1min": os.getloadavg()[0]}
        print(json.dumps({k: report[k] for k in ("images", "images_per_s",
                                                  "ratio_transform_to_plain")}, indent=1))
        save_json(args.out, report)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
