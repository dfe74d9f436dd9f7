"""kubeflow/Dockerfile: the pinned TFX base by default, the locked dependencies, the project
where the compiled pipeline looks for it; and the image built here on the local base (podman),
holding exactly the locked versions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tomli as tomllib  # Python 3.10's stdlib has no tomllib; pytest brings tomli

from kubeflow.runner import ENTRYPOINT, PROJECT_ROOT

ROOT = Path(PROJECT_ROOT)
DOCKERFILE = (ROOT / "kubeflow" / "Dockerfile").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# The Dockerfile's instructions, continuation lines joined.
INSTRUCTIONS = [line for line in re.sub(r"\\\n\s*", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.lstrip().startswith("#")]


def _locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def _pinned_tfx() -> str:
    (pin,) = [dep for dep in PYPROJECT["project"]["dependencies"] if dep.startswith("tfx")]
    return pin.split("==")[1]


def test_base_is_the_official_tfx_image_of_the_pinned_version_by_default():
    (base,) = [line.split()[1] for line in INSTRUCTIONS if line.startswith("FROM ")]
    assert base == "${BASE_IMAGE}"
    (default,) = [line.split("=", 1)[1] for line in INSTRUCTIONS
                  if line.startswith("ARG BASE_IMAGE=")]
    assert default == f"tensorflow/tfx:{_pinned_tfx()}" == f"tensorflow/tfx:{_locked_version('tfx')}"


def test_dependencies_come_from_the_lock_file():
    assert any(re.fullmatch(r"COPY pyproject\.toml uv\.lock \./", line) for line in INSTRUCTIONS)
    (install,) = [line for line in INSTRUCTIONS if "uv export" in line]
    assert "--frozen" in install and "--no-emit-project" in install
    assert "uv pip install --system --compile-bytecode --requirements" in install
    # The project goes in last and alone, so it can't change a locked version.
    assert any("uv pip install --system --compile-bytecode --no-deps ." in line
               for line in INSTRUCTIONS)


def test_keras_2_is_set_in_the_image():
    assert any(re.match(r"ENV .*\bTF_USE_LEGACY_KERAS=1\b", line) for line in INSTRUCTIONS)


def test_every_package_the_compiled_pipeline_imports_is_installed():
    copied = {line.split()[1] for line in INSTRUCTIONS if line.startswith("COPY ")}
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= copied, "every package of the wheel is copied into the image"
    assert ENTRYPOINT[-1] == "kubeflow.entrypoint" and "kubeflow" in packages


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_the_lock_exports_the_pinned_stack(tmp_path):
    # The Dockerfile's export step, run here: the lock is consistent with pyproject.toml
    # (--frozen fails otherwise) and pins the versions the project was built against.
    requirements = tmp_path / "requirements.txt"
    subprocess.run(["uv", "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet",
                    "--project", str(ROOT), "--output-file", str(requirements)], check=True)
    pins = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", requirements.read_text(), re.MULTILINE))
    assert pins["tfx"] == _pinned_tfx()
    assert pins["tensorflow"] == _locked_version("tensorflow")
    assert pins["apscheduler"] == _locked_version("apscheduler")
    assert "tfx-transfer" not in pins


def test_the_image_built_here_holds_the_locked_versions_and_the_project():
    from tests.kfp_backend import pods

    script = ("import importlib.metadata as m, json, kubeflow.entrypoint, trainer.module; "
              "print(json.dumps({p: m.version(p) for p in "
              "('tfx', 'tensorflow', 'apache-beam', 'tf-keras', 'tfx-transfer')}))")
    result = subprocess.run(["podman", "run", "--rm", "--network=none", *pods.SECURITY_CONTEXT,
                             pods.image(), "python", "-c", script], capture_output=True,
                            text=True, env=pods.podman_env(), check=True)
    versions = json.loads(result.stdout.strip().splitlines()[-1])
    for package in ("tfx", "tensorflow", "apache-beam", "tf-keras"):
        assert versions[package] == _locked_version(package), package
    assert versions["tfx-transfer"] == PYPROJECT["project"]["version"]
