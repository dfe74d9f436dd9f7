"""Task pods: the image built from kubeflow/Dockerfile, run with podman as the backend's pod
would run it.

* image: `scripts/build_image --local-base` (a Debian base built here, no registry; the
  engine's layer cache makes an unchanged build take seconds).
* security context, 2.16+ (`backend/src/v2/compiler/argocompiler/security_context.go:
  defaultUserContainerSecurityContext`): ALL capabilities dropped, no privilege escalation,
  the runtime's default seccomp profile; the image's own user (root here).
* filesystem: the image's, fresh each time, plus the launcher's local paths (`/gcs`, `/s3`,
  `/minio`, `/tmp/kfp`) and the platform spec's PVCs, nothing else of the host.
* network: the host's loopback, with the store's in-cluster name resolving to it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/tfx-transfer:kfp-harness"
CONTAINERS_CONF = ROOT / "kubeflow" / "containers.conf"
SECURITY_CONTEXT = ("--cap-drop=ALL", "--security-opt=no-new-privileges")


class PodFailed(RuntimeError):
    """The pod's command failed; the message ends with its log."""


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


@functools.lru_cache(maxsize=None)
def image() -> str:
    """The pipeline's image, built (or found in the layer cache) once per test process."""
    result = subprocess.run([str(ROOT / "scripts" / "build_image"), "--local-base", IMAGE],
                            capture_output=True, text=True, env=podman_env(), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/build_image failed:\n{result.stderr[-4000:]}")
    return IMAGE


def run(command: list[str], *, env: dict[str, str], mounts: dict[str, str],
        hosts: dict[str, str], log: Path, timeout: float = 1800) -> None:
    """Run command in a fresh container of the image: mounts host dir -> container path,
    hosts name -> address; stdout and stderr to log. Env values never reach the command line."""
    args = ["podman", "run", "--rm", f"--name=kfp-pod-{uuid.uuid4().hex[:12]}", "--pull=never",
            "--network=host", *SECURITY_CONTEXT,
            *(f"--add-host={name}:{address}" for name, address in hosts.items()),
            *(f"--volume={host}:{path}" for host, path in mounts.items()),
            *(f"--env={key}" for key in env), image(), *command]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        result = subprocess.run(args, env={**podman_env(), **env}, stdout=out,
                                stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise PodFailed(f"{log.stem}: exit code {result.returncode}; log {log}:\n{tail}")
