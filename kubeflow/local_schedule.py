"""Run a command (the local pipeline run) on a cron schedule, one run at a time.

Each run is a subprocess, so a crash or a leak in TFX/Beam can't take the scheduler down; a
failed run is logged and the next tick still fires. APScheduler skips a tick that comes while
a run is still going (`max_instances=1`) and folds missed ticks into one (`coalesce`).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
import time
from collections.abc import Sequence

from apscheduler.schedulers.blocking import BlockingScheduler

from kubeflow.cron import to_trigger

log = logging.getLogger(__name__)


def run_once(command: Sequence[str]) -> int:
    """Run the command to its end; return its exit code (127 if it couldn't start)."""
    started = time.monotonic()
    log.info("run started: %s", shlex.join(command))
    try:
        code = subprocess.run(list(command), check=False).returncode
    except OSError as error:
        log.error("run could not start: %s", error)
        return 127
    elapsed = time.monotonic() - started
    if code:
        log.error("run failed (exit code %d) after %.1f s; the schedule goes on", code, elapsed)
    else:
        log.info("run finished in %.1f s", elapsed)
    return code


def run_on_schedule(command: Sequence[str], cron: str, *, max_runs: int | None = None,
                    duration: float | None = None) -> list[int]:
    """Run `command` at every cron tick until max_runs runs ended, duration seconds passed,
    or Ctrl-C; return the exit codes of the runs that ended. A run in progress at the end of
    `duration` is left to finish."""
    scheduler = BlockingScheduler()  # cron ticks in the machine's local time zone
    codes: list[int] = []

    def tick() -> None:
        codes.append(run_once(command))
        if max_runs is not None and len(codes) >= max_runs:
            scheduler.shutdown(wait=False)

    # A tick up to a minute late (a busy or suspended machine) still starts its run.
    scheduler.add_job(tick, to_trigger(cron), max_instances=1, coalesce=True,
                      misfire_grace_time=60, id="pipeline-run")
    # A timer, not a one-off job: APScheduler 3 fails removing a job that stopped it.
    timer = threading.Timer(duration, scheduler.shutdown, kwargs={"wait": False}) \
        if duration is not None else None
    log.info("scheduled on cron %r: %s", cron, shlex.join(command))
    try:
        if timer:
            timer.start()
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("stopped")
    finally:
        if timer:
            timer.cancel()
    return codes
