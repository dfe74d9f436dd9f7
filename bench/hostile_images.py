"""Memory and time of decoding hostile images, with the image limits on and off, side by side.

    .venv/bin/python bench/hostile_images.py --out bench/results/hostile_images.json

Each case runs `transform.preprocessing.decode_and_resize` (the function inside the Transform
graph, and so inside every exported model's `serving_raw`) on one image in a fresh process,
and records that process's peak RSS and wall time: once with the default limits
(`image.max_pixels` 50 million, `image.max_bytes` 64 MiB) and once with the limits out of the
way (max_pixels 2^40, max_bytes 2^31 - 1), which is what decoding cost before frames were
counted. The images are real: animated GIFs of 1000 x 1000 frames that each differ, written
by Pillow, and a 62 kB PNG of 8000 x 8000 black pixels.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OFF = {"max_pixels": 2**40, "max_bytes": 2**31 - 1}
DECODE = """
import json, sys
import tensorflow as tf
from transform.options import ImageConfig
from transform.preprocessing import decode_and_resize
limits = json.loads(sys.argv[2])
config = ImageConfig(height=28, width=28, **limits).model_dump()
data = open(sys.argv[1], "rb").read()
try:
    decode_and_resize(tf.constant(data), config).numpy()
    outcome = "decoded"
except tf.errors.InvalidArgumentError as error:
    outcome = "refused: " + error.message.splitlines()[0][:200]
# VmHWM: this process's own peak (ru_maxrss would carry the parent's across exec).
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:"))
print(json.dumps([peak_kb, outcome]))
"""


def animated_gif(frames: int, side: int = 1000) -> bytes:
    """`frames` frames of side x side, each a different flat grey with one stripe."""
    images = []
    for index in range(frames):
        pixels = np.full((side, side), index % 200, np.uint8)
        pixels[index % side] = 255
        images.append(Image.fromarray(pixels, "L"))
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], optimize=False)
    return buffer.getvalue()


def png_bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buffer, "PNG")
    return buffer.getvalue()


def measure(path: Path, limits: dict) -> dict:
    """Peak RSS (GB), seconds and outcome of one decode in a fresh process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", DECODE, str(path), json.dumps(limits)],
                            cwd=ROOT, capture_output=True, text=True, check=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - start
    peak_kb, outcome = json.loads(result.stdout.strip().splitlines()[-1])
    return {"peak_rss_gb": round(peak_kb / 2**20, 2), "seconds": round(seconds, 1),
            "outcome": outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 400, 1200])
    parser.add_argument("--out", default="bench/results/hostile_images.json")
    args = parser.parse_args()
    images = {f"gif {n} frames": animated_gif(n) for n in args.frames}
    images["png 8000x8000"] = png_bomb()
    results = {"command": " ".join(["bench/hostile_images.py", *sys.argv[1:]]),
               "load_average_before": os.getloadavg(), "cpus": os.cpu_count(), "cases": {}}
    with tempfile.TemporaryDirectory() as work:
        for setting, limits in (("limits on", {}), ("limits off", OFF)):
            for name, data in images.items():
                path = Path(work) / name.replace(" ", "_")
                path.write_bytes(data)
                case = results["cases"].setdefault(name, {"kb": round(len(data) / 1e3)})
                case[setting] = measure(path, limits)
                print(name, setting, case[setting], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
