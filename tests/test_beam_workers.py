"""`--direct_num_workers=0` resolves to the CPUs a process may use (affinity, cgroup quota),
not Beam's host CPU count, locally and in Kubeflow pods."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kubeflow.entrypoint import parse_flags
from pipeline.beam_workers import AUTO, resolve_worker_count, usable_cpus
from pipeline.local_runner import local_beam_args

AFFINITY = len(os.sched_getaffinity(0))


def cgroup_files(tmp_path, v2: str | None = None, v1: tuple[str, str] | None = None):
    paths = str(tmp_path / "cpu.max"), (str(tmp_path / "quota"), str(tmp_path / "period"))
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2)
    if v1 is not None:
        (tmp_path / "quota").write_text(v1[0])
        (tmp_path / "period").write_text(v1[1])
    return paths


@pytest.mark.parametrize("v2, v1, expected", [
    ("50000 100000\n", None, 1),                 # half a CPU: still one worker
    ("max 100000\n", None, AFFINITY),            # no limit
    (None, ("100000", "100000"), 1),             # cgroup v1 quota
    (None, ("-1", "100000"), AFFINITY),          # cgroup v1, no limit
    (None, None, AFFINITY),                      # no cgroup files at all
    (f"{100000 * (AFFINITY + 8)} 100000", None, AFFINITY),  # a quota above the affinity
])
def test_cpu_quota_caps_the_affinity(tmp_path, v2, v1, expected):
    assert usable_cpus(*cgroup_files(tmp_path, v2, v1)) == expected


def test_affinity_of_a_real_process_counts():
    pinned = subprocess.run(
        [sys.executable, "-c", "import os; os.sched_setaffinity(0, {0}); "
         "from pipeline.beam_workers import usable_cpus; print(usable_cpus())"],
        capture_output=True, text=True, check=True)
    assert pinned.stdout.strip() == "1"


def test_only_zero_is_resolved_locally_and_in_pods():
    args = ["--direct_running_mode=multi_processing", AUTO]
    resolved = f"--direct_num_workers={usable_cpus()}"
    assert resolve_worker_count(args) == [args[0], resolved]
    assert resolve_worker_count(["--direct_num_workers=3"]) == ["--direct_num_workers=3"]
    assert resolved in local_beam_args(args) and AUTO not in local_beam_args(args)
    _, beam_args = parse_flags(["entrypoint", "--executor_class_path", "x.Executor",
                                "--json_serialized_invocation_args", "{}", AUTO])
    assert beam_args[-1] == resolved and AUTO not in beam_args
