"""What a user sees while a pipeline runs: one line per component, with its time."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import TextIO

_RUNNING = "Component %s is running."


def shown(text: str) -> str:
    """`text` safe to print on a terminal: control characters (escape codes, line breaks)
    written as Python escapes, so a file name can't move the cursor or fake a line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

_FINISHED = "Component %s is finished."
_CACHED = "A cached execution %d is used."


class ProgressHandler(logging.Handler):
    """Turns LocalDagRunner's log records into `component ... 12.3 s` lines."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__(level=logging.INFO)
        self.stream = stream
        self.seconds: dict[str, float] = {}
        self.cached: set[str] = set()
        self._current: str | None = None
        self._started = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _RUNNING:
            self._current, self._started = record.args[0], time.monotonic()
            self._write(f"  {self._current:<28} running ...")
        elif record.msg == _CACHED and self._current:
            self.cached.add(self._current)
        elif record.msg == _FINISHED:
            name = record.args[0]
            self.seconds[name] = time.monotonic() - self._started
            note = "cached" if name in self.cached else "done"
            self._write(f"  {name:<28} {note:<7} {self.seconds[name]:7.1f} s")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def quiet_logs(verbose: bool) -> None:
    """Keep TF/TFX/Beam noise out of the user's face unless `-v` asks for it.

    Set in the environment, so Beam's worker processes inherit it too.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    # Libraries re-enable warnings on import; routed into logging, ERROR level hides them.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def output_to_log(log_path: str) -> Iterator[TextIO]:
    """Send everything written to fds 1 and 2 — by us, TensorFlow's C++ logs, the wheel
    builds and Beam's worker processes — to `log_path`; yield a stream to the terminal."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    with open(log_path, "ab") as log:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            terminal.close()


def install_progress(verbose: bool, stream: TextIO = sys.stderr) -> ProgressHandler:
    """Route INFO records to the progress handler; show others only when verbose."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    details = logging.StreamHandler(sys.stderr)
    details.setLevel(logging.INFO if verbose else logging.ERROR)
    details.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    progress = ProgressHandler(stream)
    root.addHandler(details)
    # On absl's own logger, where TFX logs. Executors re-parse absl flags, which resets this
    # logger to WARNING mid-run; its level is held at INFO so the progress lines keep coming.
    absl_logger = logging.getLogger("absl")
    absl_logger.setLevel(logging.INFO)
    absl_logger.setLevel = lambda level: logging.Logger.setLevel(  # type: ignore[method-assign]
        absl_logger, min(level, logging.INFO))
    absl_logger.addHandler(progress)
    try:  # absl adds its own handler when first used; ours replace it.
        from absl import logging as absl_logging
        absl_logging.get_absl_handler().setLevel(logging.ERROR)
    except ImportError:
        pass
    return progress
