"""Real `tfx-transfer run` processes for the reliability tests (no tests here).

Every run uses tiny Fashion-MNIST data, 1-epoch phases, the dense network and in-memory
Beam, and runs from a snapshot of the project: TFX fingerprints the transform/ and trainer/
module files for caching, and other work on them mid-test would otherwise defeat the cache
that the kill-and-rerun tests check.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from tests.fashion_mnist import write_subset

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG = "configs/fashion_mnist_ab.yaml"
RUN_TIMEOUT = 900
# Every module that reads the chain marks itself with this: one xdist worker runs them all, so
# the chain runs once (tests/suite_schedule.py).
CHAIN_GROUP = pytest.mark.xdist_group("reliability_chain")
# A fake secret in the runs' environment: it must never reach a log, report or spec.
CANARY = "AKIAQWERTYUIOPASDFGHJ"
CANARY_SECRET = "tfx-transfer-canary-secret-5d1f0c"


@dataclass
class Workspace:
    """Where a sequence of runs of one pipeline root lives, and how to start them."""

    base: Path
    project: Path
    data: Path
    pipeline_root: Path
    serving_dir: Path
    overrides: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        sets = [arg for item in self.overrides for arg in ("--set", item)]
        return [sys.executable, "-m", "pipeline.cli", "run", "--config", CONFIG, *sets]


def snapshot_project(dst: Path) -> Path:
    """The project's code and configs, copied: what `tfx-transfer run` needs, nothing else."""
    for name in ("pipeline", "components", "transform", "trainer", "kubeflow", "configs"):
        shutil.copytree(PROJECT_ROOT / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def make_workspace(base: Path, extra: tuple[str, ...] = ()) -> Workspace:
    """A project snapshot, tiny data and the overrides of a fast run under `base`."""
    project = snapshot_project(base / "project")
    data = Path(write_subset(str(base / "data"), n_train=300, n_test=100))
    ws = Workspace(base, project, data, base / "pipeline", base / "serving")
    ws.overrides = [
        f"source.path={data}", f"target.path={data}",
        f"pipeline_root={ws.pipeline_root}", f"serving_dir={ws.serving_dir}",
        "target.label_budget=20", "model.architecture=dense",
        "training.pretrain.epochs=1", "training.frozen.epochs=1", "training.fine_tune.epochs=1",
        "beam_pipeline_args=[--direct_running_mode=in_memory]", *extra]
    return ws


def run_env(base: Path) -> dict[str, str]:
    """The environment of a run: canary credentials set; $TMPDIR under `base`, so that the
    hygiene tests see any temp file a run leaves; no __pycache__ in the code it runs."""
    tmp = base / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "AWS_ACCESS_KEY_ID": CANARY,
            "AWS_SECRET_ACCESS_KEY": CANARY_SECRET, "PYTHONDONTWRITEBYTECODE": "1"}


class Run:
    """A `tfx-transfer run` process in its own process group, its output read line by line."""

    def __init__(self, ws: Workspace):
        self.proc = subprocess.Popen(
            ws.command(), cwd=ws.project, env=run_env(ws.base),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)  # its own group: a kill takes its children too
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, condition: Callable[[], bool], what: str,
                 timeout: float = RUN_TIMEOUT) -> None:
        """Read output until `condition()` holds; fail if the run ends or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"timed out waiting for {what}:\n" + self.output())
            try:
                line = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"run ended before {what}:\n" + self.output())
            self.lines.append(line)

    def saw(self, component: str, state: str) -> bool:
        """Whether the progress line `  <component> <state> ...` has been printed."""
        return any(line.split()[:2] == [component, state] for line in self.lines)

    def kill(self) -> None:
        """SIGKILL the whole process group, as the OOM killer or a lost node would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def finish(self, timeout: float = RUN_TIMEOUT) -> int:
        """Wait for the run to end; its exit code."""
        self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=30)) is not None:
            self.lines.append(line)
        return self.proc.returncode

    def output(self) -> str:
        return "\n".join(self.lines[-60:])


def files_under(path: Path) -> list[Path]:
    """Regular files below path (none if it doesn't exist)."""
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def latest_report(ws: Workspace) -> dict:
    """report.json of the newest run."""
    reports = ws.pipeline_root / "reports"
    latest = max(reports.iterdir(), key=lambda p: p.stat().st_mtime)
    return json.loads((latest / "report.json").read_text())


def metadata_store_of(ws: Workspace) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(ws.pipeline_root / "metadata.sqlite")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


@dataclass
class Kill:
    """A run SIGKILLed while `component` ran, and what it had done by then."""

    component: str
    finished: list[str]  # components that printed `done` or `cached` before the kill
    partial_files: list[Path]  # what the killed component had written


@dataclass
class Chain:
    """Runs of one pipeline root: killed mid-Transform, killed mid-Trainer, then run to the
    end while a second run of the root is refused."""

    ws: Workspace
    kills: list[Kill]
    refused_code: int
    refused_output: str
    holder_pid: int
    final_code: int
    final_output: str
    before: dict[str, bytes]  # the project snapshot and data files, before any run


def tree_contents(*roots: Path) -> dict[str, bytes]:
    """Every file below the roots, by path, with its bytes."""
    return {str(p): p.read_bytes() for root in roots for p in files_under(root)}


def _finished(run: Run) -> list[str]:
    return [line.split()[0] for line in run.lines if line.split()[1:2] in (["done"], ["cached"])]


def _kill_when_writing(run: Run, ws: Workspace, component: str) -> Kill:
    """SIGKILL the run once `component` has started and written a file of its own."""
    output = ws.pipeline_root / component

    def writing() -> bool:
        if run.saw(component, "done"):
            raise AssertionError(f"{component} finished before it was seen writing")
        return run.saw(component, "running") and bool(files_under(output))

    run.wait_for(writing, f"{component} to write its outputs")
    run.kill()
    return Kill(component, _finished(run), files_under(output))


def _refused_run(holder: Run, start: Callable[[], Run]) -> tuple[int, str]:
    """Start a second run of the same root while `holder` runs; its exit code and output."""
    holder.wait_for(lambda: any(line.endswith("running ...") for line in holder.lines),
                    "the first component")
    contender = start()
    code = contender.finish()
    assert holder.proc.poll() is None, "the first run ended before the second one tried"
    return code, contender.output()


def run_chain(base: Path) -> Chain:
    """The kill-and-rerun sequence; the evaluation margin is impossible, so nothing is blessed
    and any push would be a bug."""
    ws = make_workspace(base, ("evaluation.margin=1.0",))
    before = tree_contents(ws.project, ws.data)
    runs: list[Run] = []

    def start() -> Run:
        runs.append(Run(ws))
        return runs[-1]

    try:
        kills = [_kill_when_writing(start(), ws, "target_transform"),
                 _kill_when_writing(start(), ws, "pretrain_trainer")]
        final = start()
        refused_code, refused_output = _refused_run(final, start)
        final_code = final.finish()
    finally:
        for run in runs:  # a failed wait leaves its run going
            run.kill()
    return Chain(ws, kills, refused_code, refused_output, final.proc.pid, final_code,
                 final.output(), before)


@functools.cache
def _chain_outcome() -> Chain | Exception:
    base = Path(tempfile.mkdtemp(prefix="reliability_chain_"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    try:
        return run_chain(base)
    except Exception as error:  # noqa: BLE001 - kept, so the tests that need it fail fast
        return error


def shared_chain() -> Chain:
    """The chain, run once per test process for every test that looks at it."""
    outcome = _chain_outcome()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
