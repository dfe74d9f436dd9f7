"""Per-image CPU cost of ExampleGen's and Transform's work at ImageNet-like sizes, on one core.

Feeds the sizing estimate of docs/scaling.md: synthetic photo-like JPEGs (smooth colour
fields plus noise, ImageNet's typical 500x375, about ImageNet's average file size) go through
what ImageExampleGen does per image (validate with Pillow, build the tf.Example) and what
the Transform does (transform/preprocessing.py to 224x224x3), single-threaded.

    .venv/bin/python bench/scaling_per_image.py --images 200 --out /tmp/per_image.json
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

# One core: the numbers are per core, to multiply by a cluster's cores.
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

from components.image_example_gen.records import image_problem, make_example  # noqa: E402
from transform.features import IMAGE_KEY, LABEL_KEY  # noqa: E402
from transform.options import ImageConfig  # noqa: E402
from transform.preprocessing import preprocessing_fn  # noqa: E402

IMAGE_CONFIG = ImageConfig(height=224, width=224, channels=3, scale="symmetric").model_dump()
BATCH = 32


def photo_like_jpeg(rng: np.random.Generator, width: int = 500, height: int = 375) -> bytes:
    """A JPEG with a photo's mix of smooth areas and texture."""
    coarse = rng.uniform(0, 255, (height // 25 + 1, width // 25 + 1, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), float)
    pixels = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def example_gen_rate(images: list[bytes]) -> float:
    """Images per second through ExampleGen's per-image work: validate, then serialize."""
    start = time.perf_counter()
    for image in images:
        assert image_problem(image) is None
        make_example(image, 0, "class")
    return per_second(len(images), time.perf_counter() - start)


def transform_rate(images: list[bytes]) -> tuple[float, np.ndarray]:
    """Images per second through the preprocessing_fn, and one transformed image."""
    @tf.function
    def transform(batch: tf.Tensor) -> dict[str, tf.Tensor]:
        return preprocessing_fn({IMAGE_KEY: batch, LABEL_KEY: tf.zeros_like(batch, tf.int64)},
                                IMAGE_CONFIG)

    batches = [tf.constant([[image] for image in images[i:i + BATCH]])
               for i in range(0, len(images), BATCH)]
    transform(batches[0])  # trace once, outside the timing
    start = time.perf_counter()
    outputs = [transform(batch) for batch in batches]
    rate = per_second(len(images), time.perf_counter() - start)
    return rate, outputs[0]["image_xf"][0].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--out", help="JSON results file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = [photo_like_jpeg(rng) for _ in range(args.images)]
    transform_per_s, pixels = transform_rate(images)
    # As the Transform writes it: a float list in a tf.Example, in a gzipped TFRecord file.
    example = tf.train.Example(features=tf.train.Features(feature={"image_xf": tf.train.Feature(
        float_list=tf.train.FloatList(value=pixels.ravel()))}))
    report = {
        "jpeg_kb_mean": round(float(np.mean([len(image) for image in images])) / 1024, 1),
        "example_gen_images_per_core_s": example_gen_rate(images),
        "transform_images_per_core_s": transform_per_s,
        "transformed_image_kb": round(pixels.nbytes / 1024, 1),
        "transformed_example_gzip_kb": round(
            len(gzip.compress(example.SerializeToString())) / 1024, 1),
        "load_average": os.getloadavg()}
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=1)


if __name__ == "__main__":
    main()
