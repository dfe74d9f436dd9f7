"""CI as CI runs it: `bash .ci/run` on fresh clones of HEAD, its setup and test phase timed.

    .venv/bin/python bench/fresh_clone_ci.py --runs 3 --out bench/results/fresh_clone_ci.json

Each run clones the repository into a new directory (no venv, no caches of the project) and
runs `.ci/run`, which is `make test`: setup, then the suite. The test phase is pytest's own
total, from its last line; setup is the rest. A finished run is written at once and counted
on the next start (resumable); runs of another commit are kept apart. The load average before
each run says whether the machine was idle.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# pytest's last line: "==== 422 passed, 1 warning in 799.25s (0:13:19) ====".
SUMMARY = re.compile(r"^=+ (?P<outcomes>.+) in (?P<seconds>[\d.]+)s\b.*=+$", re.MULTILINE)


def head_commit() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def one_run(commit: str, log: Path) -> dict:
    """Clone `commit` afresh, run .ci/run; its exit code, setup and test seconds."""
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fresh-clone-") as work:
        clone = Path(work) / "tfx-transfer"
        subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "--quiet", commit], cwd=clone, check=True)
        start = time.monotonic()
        with open(log, "w", encoding="utf-8") as out:
            code = subprocess.run(["bash", ".ci/run"], cwd=clone, stdout=out,
                                  stderr=subprocess.STDOUT).returncode
        total = time.monotonic() - start
    summaries = list(SUMMARY.finditer(log.read_text(encoding="utf-8")))
    if not summaries:
        return {"exit_code": code, "total_seconds": round(total), "load_average_before": load,
                "error": f"no pytest summary in {log}"}
    last = summaries[-1]
    tests = float(last["seconds"])
    return {"exit_code": code, "outcomes": last["outcomes"], "test_seconds": round(tests),
            "setup_seconds": round(total - tests), "total_seconds": round(total),
            "load_average_before": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="bench/results/fresh_clone_ci.json")
    parser.add_argument("--logs", default=tempfile.gettempdir())
    args = parser.parse_args()
    out = Path(args.out)
    commit = head_commit()
    results = json.loads(out.read_text()) if out.exists() else {}
    if results.get("commit") != commit:
        results = {"command": "bench/fresh_clone_ci.py", "commit": commit,
                   "cpus": os.cpu_count(), "runs": []}
    while len(results["runs"]) < args.runs:
        log = Path(args.logs) / f"fresh_clone_ci_{len(results['runs']) + 1}.log"
        run = one_run(commit, log)
        results["runs"].append(run)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(run))


if __name__ == "__main__":
    main()
