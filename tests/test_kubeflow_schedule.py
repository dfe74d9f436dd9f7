"""`schedule --local`: cron-driven runs, one at a time, going on after a failed run."""

from __future__ import annotations

import sys

import pytest

from kubeflow import local_schedule
from pipeline.config import ConfigError
from tests.kubeflow_helpers import EXAMPLE, parse_args

# A stand-in for `tfx-transfer run`: takes 1.2 s, longer than the 1 s between ticks, so a tick
# comes while it runs; logs its start and end; fails every other time.
STAND_IN = """
import pathlib, sys, time
log = pathlib.Path(sys.argv[1])
done = len(log.read_text().splitlines()) if log.exists() else 0
start = time.time()
time.sleep(1.2)
with log.open("a") as f:
    f.write(f"{start} {time.time()}\\n")
sys.exit(1 if done % 2 == 0 else 0)
"""


def test_runs_never_overlap_and_a_failed_run_doesnt_stop_the_schedule(tmp_path):
    log = tmp_path / "runs.log"
    codes = local_schedule.run_on_schedule([sys.executable, "-c", STAND_IN, str(log)],
                                           "* * * * * *", max_runs=3, duration=30)
    assert codes == [1, 0, 1]  # the runs after a failure still happened
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == 3
    for (_, end), (next_start, _) in zip(spans, spans[1:]):
        assert next_start >= end  # never two at once


def test_duration_stops_the_schedule(tmp_path):
    codes = local_schedule.run_on_schedule([sys.executable, "-c", "pass"], "0 0 1 1 *",
                                           duration=0.5)
    assert codes == []


def test_a_command_that_cant_start_is_a_failed_run():
    assert local_schedule.run_once(["/nonexistent/tfx-transfer"]) == 127


def test_cli_runs_tfx_transfer_run_in_a_child_process(monkeypatch):
    seen = {}

    def fake_run_on_schedule(command, cron, *, max_runs, duration):
        seen.update(command=command, cron=cron, max_runs=max_runs, duration=duration)
        return [0, 1]

    monkeypatch.setattr(local_schedule, "run_on_schedule", fake_run_on_schedule)
    args = parse_args(["schedule", "--local", "-c", EXAMPLE, "--set", "seed=7",
                       "--cron", "0 3 * * *", "--max-runs", "2"])
    assert args.handler(args) == 0
    assert seen == {"command": [sys.executable, "-m", "pipeline.cli", "run", "--config",
                                EXAMPLE, "--set=seed=7"],
                    "cron": "0 3 * * *", "max_runs": 2, "duration": None}


def test_cli_refuses_a_bad_cron_before_waiting():
    args = parse_args(["schedule", "--local", "-c", EXAMPLE, "--cron", "0 25 * * *"])
    with pytest.raises(ConfigError, match="--cron"):
        args.handler(args)
