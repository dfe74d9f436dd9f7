"""One run at a time per pipeline root: an exclusive flock on `<pipeline_root>/.run.lock`.

A scheduled run that fires while another is still going must not interleave with it: both
would write the same SQLite ML Metadata store and the same serving dir. The lock is taken
without waiting, so the late run fails at once naming the root and the holder's pid. The
kernel drops a flock when its holder exits, however it exits (SIGKILL and OOM kills too), so
a crashed run never leaves a stale lock behind; the pid in the file is only for messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

LOCK_FILE = ".run.lock"


class RunLockedError(RuntimeError):
    """Another process is running a pipeline in this pipeline root."""


def _holder(fd: int) -> str:
    """The pid the current holder wrote, or 'unknown' if it has not written it yet."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


@contextlib.contextmanager
def hold_run_lock(pipeline_root: str) -> Iterator[str]:
    """Hold the root's run lock for the `with` body; yields the lock file's path.

    Raises RunLockedError at once if another process holds it.
    """
    os.makedirs(pipeline_root, exist_ok=True)
    path = os.path.join(pipeline_root, LOCK_FILE)
    # O_CLOEXEC (Python's default): Beam's and TFX's child processes must not inherit it.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"pipeline root {pipeline_root} is in use by another run (pid {_holder(fd)}, "
                f"lock {path}); runs of one root must not overlap, so this one did not start. "
                "Retry when that run has finished.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield path
    finally:
        os.close(fd)  # releases the flock
