"""What the pipeline's image costs to build and to start, on the base built here, in one run.

    .venv/bin/python bench/image_build.py --out bench/results/image_build.json

Cases, one after another on the same machine (podman, kubeflow/containers.conf):

* cold: `kubeflow/Dockerfile` with no layer cache (the locked dependencies from PyPI);
* project changed: the same build again with one project file changed, the layer cache kept
  (what `make test` pays after a code change);
* unchanged: the same build once more (what `make test` pays when nothing changed);
* the image's size, and a fresh container importing TensorFlow and the pipeline's entrypoint
  (median of --repeats), as every task of the pipeline does first.

The local base (`scripts/build_image --base-only`) is made first if it is missing, outside the
timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = "localhost/tfx-transfer:bench-image-build"
IMPORT = "import tensorflow, kubeflow.entrypoint"
# What kubeflow/Dockerfile copies from the build context.
CONTEXT = ("kubeflow", "pyproject.toml", "uv.lock", "README.md", "configs", "pipeline",
           "components", "transform", "trainer")


def engine_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(ROOT / "kubeflow" / "containers.conf")}


def timed(command: list[str], cwd: Path = ROOT) -> float:
    """Wall seconds of command, which must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=engine_env(), check=True, capture_output=True)
    return round(time.perf_counter() - start, 1)


def build(context: Path, base: str, cached: bool) -> list[str]:
    return ["podman", "build", *([] if cached else ["--no-cache"]), "--network", "host",
            "--build-arg", f"BASE_IMAGE={base}", "-f", "kubeflow/Dockerfile", "-t", TAG,
            str(context)]


def changed_copy(destination: Path) -> Path:
    """The files the Dockerfile copies, their modes kept (the engine's cache key holds them:
    a `git archive` copy's 664 files miss the cache), with one project file changed."""
    destination.mkdir()
    for name in CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, destination / name)
    with open(destination / "pipeline" / "__init__.py", "a", encoding="utf-8") as module:
        module.write("# changed by bench/image_build.py\n")
    return destination


def image_bytes() -> int:
    out = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", TAG],
                         env=engine_env(), check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/image_build.json")
    args = parser.parse_args()
    if not shutil.which("podman"):
        sys.exit("podman is not installed: run `make setup` first")
    base = subprocess.run(["scripts/build_image", "--base-only"], cwd=ROOT, env=engine_env(),
                          check=True, capture_output=True, text=True).stdout.strip()
    results: dict = {"command": " ".join(["bench/image_build.py", *sys.argv[1:]]),
                     "load_average_before": os.getloadavg(), "cpus": os.cpu_count(),
                     "base": base, "seconds": {}}
    seconds = results["seconds"]
    seconds["cold build"] = timed(build(ROOT, base, cached=False))
    with tempfile.TemporaryDirectory() as work:
        seconds["rebuild, project changed"] = timed(
            build(changed_copy(Path(work) / "tree"), base, cached=True))
    seconds["rebuild, unchanged"] = timed(build(ROOT, base, cached=True))
    run = ["podman", "run", "--rm", "--network=none", TAG, "python", "-c", IMPORT]
    starts = [timed(run) for _ in range(args.repeats)]
    seconds["container start + import (median)"] = statistics.median(starts)
    results["container_starts"] = starts
    results["image_gb"] = round(image_bytes() / 1e9, 2)
    subprocess.run(["podman", "rmi", TAG], env=engine_env(), capture_output=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
