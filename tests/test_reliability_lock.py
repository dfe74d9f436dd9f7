"""One run per pipeline root: a second run is refused at once, naming the root and the pid of
the run that holds it; a SIGKILLed holder releases the lock with its death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.run_lock import LOCK_FILE, RunLockedError, hold_run_lock
from tests.reliability_runs import CHAIN_GROUP, PROJECT_ROOT, shared_chain

pytestmark = CHAIN_GROUP

HOLD = ("import sys, time\n"
        "from pipeline.run_lock import hold_run_lock\n"
        "with hold_run_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n")


def _holder(root: Path) -> subprocess.Popen:
    """Another process holding the root's lock (it has said so once this returns)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_second_process_is_refused_and_a_killed_holder_releases(tmp_path):
    root = tmp_path / "pipeline"
    holder = _holder(root)
    try:
        with pytest.raises(RunLockedError) as refused:
            with hold_run_lock(str(root)):
                pytest.fail("took a lock another process holds")
        assert str(root) in str(refused.value)
        assert f"pid {holder.pid}" in str(refused.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the flock with the process: no stale lock to clean up.
    with hold_run_lock(str(root)) as path:
        assert Path(path) == root / LOCK_FILE
        assert Path(path).read_text() == f"{os.getpid()}\n"


def test_lock_is_released_when_the_body_raises(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with hold_run_lock(str(tmp_path)):
            1 / 0  # noqa: B018 - a failing run
    with hold_run_lock(str(tmp_path)):
        pass


@pytest.mark.e2e
def test_scheduled_run_firing_during_a_run_is_refused():
    """Two real `tfx-transfer run`s of one root: the second fails at once, names the root and
    the first's pid, and records nothing in ML Metadata (the kill tests count the runs)."""
    chain = shared_chain()
    assert chain.refused_code == 1, chain.refused_output
    message = chain.refused_output.splitlines()
    error = next(line for line in message if line.startswith("error: "))
    assert "RunLockedError" in error
    assert f"pipeline root {chain.ws.pipeline_root} is in use" in error
    assert f"pid {chain.holder_pid}" in error
    assert not any(line.endswith("running ...") for line in message)
