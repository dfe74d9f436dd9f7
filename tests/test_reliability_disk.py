"""Disk full and unwritable outputs: the run fails with the path and the cause, and the models
already pushed stay as they were. Real file systems: small and read-only tmpfs mounts, and a
regular file where the pipeline root should be. (Full serving dirs: test_reliability_serving.)
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.local_runner import LOW_SPACE, disk_full
from tests.fashion_mnist import write_subset
from tests.reliability_runs import Run, make_workspace, tree_contents


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at path for the block; skips the test where mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _pushed_version(serving: Path) -> dict[str, bytes]:
    """A version already being served, as the files it is made of."""
    version = serving / "1700000000"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"\x08\x01 served")
    (version / "variables").mkdir()
    (version / "variables" / "variables.index").write_bytes(b"index")
    return tree_contents(serving)


@pytest.mark.e2e
def test_run_on_a_full_disk_fails_naming_root_and_cause(tmp_path):
    ws = make_workspace(tmp_path)
    served = _pushed_version(ws.serving_dir)
    # 400 kB: the run lock, logs, module wheels and ML Metadata fit; the first examples don't.
    with tmpfs(ws.pipeline_root, "size=400k"):
        run = Run(ws)
        code = run.finish()
    error = next(line for line in run.lines if line.startswith("error: "))
    assert code == 1, run.output()
    free = re.match(r"error: DiskFullError: a disk filled up during the run \(pipeline root "
                    rf"{re.escape(str(ws.pipeline_root))}: (\d+) bytes free\): \w+", error)
    assert free and int(free.group(1)) < 400_000, error
    assert tree_contents(ws.serving_dir) == served


def _run_in_process(tmp_path: Path, pipeline_root: Path, capsys) -> tuple[int, str]:
    """`tfx-transfer run` through cli.main with the given root; exit code and stderr."""
    data = write_subset(str(tmp_path / "data"), n_train=100, n_test=50)
    code = cli.main(["run", "--set", f"pipeline_root={pipeline_root}",
                     "--set", f"serving_dir={tmp_path / 'serving'}",
                     "--set", f"source.path={data}", "--set", f"target.path={data}",
                     "--set", "target.label_budget=4"])
    return code, capsys.readouterr().err


def test_read_only_pipeline_root_fails_naming_path_and_cause(tmp_path, capsys):
    with tmpfs(tmp_path / "readonly", "ro,size=1m") as root:
        code, err = _run_in_process(tmp_path, root, capsys)
    assert code == 1
    assert f"Read-only file system: '{root}/logs'" in err, err


def test_file_as_pipeline_root_fails_naming_path_and_cause(tmp_path, capsys):
    root = tmp_path / "not-a-dir"
    root.write_text("a file")
    code, err = _run_in_process(tmp_path, root, capsys)
    assert code == 1
    assert f"Not a directory: '{root}/logs'" in err, err
    assert root.read_text() == "a file"


def _raised_from(cause: BaseException) -> RuntimeError:
    """A RuntimeError raised from `cause`, as Beam and TFX wrap errors."""
    wrapped = RuntimeError("Failed to build wheel.")
    wrapped.__cause__ = cause
    return wrapped


@pytest.mark.parametrize("cause, full", [
    (OSError(28, "No space left on device"), True),
    (RuntimeError("Error when executing query: database or disk is full"), True),
    (ValueError("Disk quota exceeded"), True),
    (ValueError("invalid literal for int()"), False),
])
def test_disk_full_is_found_behind_wrapped_errors(tmp_path, cause, full):
    assert disk_full(_raised_from(cause), str(tmp_path)) == full


def test_a_nearly_full_root_is_blamed_when_the_error_hides_the_cause(tmp_path):
    with tmpfs(tmp_path / "small", f"size={LOW_SPACE // 2}") as root:
        assert disk_full(RuntimeError("Failed to build wheel."), str(root))
