"""Run the pipeline of a config locally: LocalDagRunner on Beam, SQLite ML Metadata."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from absl import logging
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.metadata import sqlite_metadata_connection_config

from pipeline.abandoned_runs import cancel_abandoned_executions
from pipeline.beam_workers import resolve_worker_count
from pipeline.config import REMOTE_PREFIXES, SCRATCH_DIR, ConfigError, PipelineConfig
from components.versioned_pusher.serving_dir import serving_state
from pipeline.pipeline import create_pipeline
from pipeline.run_lock import hold_run_lock

# How a full disk shows through SQLite, Beam and TensorFlow, which often drop the errno.
_DISK_FULL_MESSAGES = ("No space left on device", "database or disk is full",
                       "Disk quota exceeded")
# Less free space than this under the root, and a failure is blamed on it: some failures hide
# the cause (TFX builds module wheels in a subprocess, which only says it failed), and even a
# tiny dataset's run writes more than this.
LOW_SPACE = 64 * 2**20
SCRATCH_MARK = "made-by-tfx-transfer"  # in the scratch dir: only such a dir is ever deleted
# Unless one of these Beam flags is given, TFX builds a 40 MB sdist of itself in /tmp for
# Beam's workers, in every Beam component: 2-4 s each, and never removed. The DirectRunner's
# workers run this interpreter's packages and ignore the flags.
_DEPENDENCY_FLAGS = ("--extra_package", "--setup_file", "--requirements_file",
                     "--worker_harness_container_image", "--sdk_container_image")
_SKIP_TFX_SDIST = "--sdk_container_image=unused-by-the-direct-runner"


class DiskFullError(RuntimeError):
    """A run stopped because a disk it writes to filled up."""


def _free_bytes(path: str) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def disk_full(error: BaseException, pipeline_root: str) -> bool:
    """Whether the error, or one it was raised from, says that a disk is full, or the disk
    under the pipeline root is nearly full."""
    free = _free_bytes(pipeline_root)
    if free is not None and free < LOW_SPACE:
        return True
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(message in str(seen) for message in _DISK_FULL_MESSAGES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def scratch_dir(pipeline_root: str) -> Iterator[str]:
    """Temp files of the run (ours, TFX's module wheel builds, Beam's, TensorFlow's autograph)
    go to `<pipeline_root>/.tfx-transfer-scratch` instead of /tmp, and are removed afterwards.

    TFX and TensorFlow leave some 40 MB a run in /tmp, which scheduled runs would pile up; a
    killed run leaves its share here, and the next run removes it. Only a folder holding the
    mark this function writes is ever removed: one the user made is an error, left alone.
    Call it holding the run lock: then no other run can be using the directory.
    """
    path = os.path.join(pipeline_root, SCRATCH_DIR)
    if os.path.lexists(path):
        if not os.path.isfile(os.path.join(path, SCRATCH_MARK)) or os.path.islink(path):
            raise ConfigError(f"{path}: not made by tfx-transfer, and runs delete their "
                              "scratch folder; move it away")
        shutil.rmtree(path)
    os.makedirs(path)
    Path(path, SCRATCH_MARK).touch()
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = path  # ours, then child processes'
    try:
        yield path
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def argv_for_tfx() -> Iterator[None]:
    """Hide the command line from TFX while it runs: every Beam executor re-parses sys.argv as
    absl flags, where the CLI's own `-v run` would read as `--verbosity=run` and fail."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def local_beam_args(args: list[str]) -> list[str]:
    """The config's Beam args, with the worker count resolved and, on the DirectRunner, a flag
    that skips TFX's sdist build."""
    args = resolve_worker_count(args)
    runner = next((arg.split("=", 1)[1] for arg in args if arg.startswith("--runner=")),
                  "DirectRunner")
    if runner not in ("DirectRunner", "direct") or any(
            arg.startswith(_DEPENDENCY_FLAGS) for arg in args):
        return list(args)
    return [*args, _SKIP_TFX_SDIST]


def run_local(config: PipelineConfig, *, enable_cache: bool = True) -> None:
    """Run every component of the config's pipeline, reusing cached results where unchanged.

    Holds the pipeline root's run lock throughout: a second run of the same root fails at
    once with RunLockedError instead of interleaving with this one.
    """
    root = config.pipeline_root
    if root.startswith(REMOTE_PREFIXES):
        # SQLite and flock need a local file system; remote roots are Kubeflow's.
        raise ConfigError(f"pipeline_root: {root} is remote; a local run keeps its ML "
                          "Metadata and run lock there, so it must be a local path")
    # Locked before the pipeline is built: building writes the module wheels under the root.
    with hold_run_lock(root), scratch_dir(root), argv_for_tfx():
        for path in cancel_abandoned_executions(config.metadata_path, root):
            logging.info("Removed %s, left by a run that died", path)
        metadata = sqlite_metadata_connection_config(config.metadata_path)
        try:
            LocalDagRunner().run(create_pipeline(
                config, metadata_connection_config=metadata, enable_cache=enable_cache,
                serving_state=serving_state(config.serving_dir),
                beam_pipeline_args=local_beam_args(config.beam_pipeline_args)))
        except Exception as error:
            if not disk_full(error, root):
                raise
            # SQLite's, Beam's and TFX's messages name neither the disk nor how full it is.
            cause = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DiskFullError(
                f"a disk filled up during the run (pipeline root {root}: "
                f"{_free_bytes(root)} bytes free): {type(error).__name__}: {cause}") from error
