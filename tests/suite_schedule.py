"""How the suite spreads over pytest-xdist's workers, and what each test costs (a pytest
plugin, loaded with `-p tests.suite_schedule` from pyproject.toml; docs/development.md).

* `-n auto` is the CPUs this process may use (affinity, container quota).
* Each test's group is its xdist_group mark, else its module: a group runs on one worker, so
  a module's (or a marked group's) shared runs happen once.
* The costliest groups, by the seconds recorded in bench/results/ci_durations.json, are
  collected first: xdist hands groups out in that order.
* `--record-durations PATH` writes that record: each test's seconds, group, worker, outcome.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.beam_workers import usable_cpus

DURATIONS = Path(__file__).resolve().parent.parent / "bench" / "results" / "ci_durations.json"
GROUP_PROPERTY = "xdist_group"  # the group, carried to the controller in user_properties


def xdist_group(item: pytest.Item) -> str:
    """The group, by xdist's own rule (its marks' names, sorted and joined), else the module."""
    names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
             for mark in item.iter_markers("xdist_group")}
    return "_".join(sorted(names)) if names else item.module.__name__


def recorded_seconds(path: Path = DURATIONS) -> dict[str, float]:
    """Seconds by test id from the last record; none if there is no readable record (then the
    collection order stays; tests/test_suite_schedule.py checks the committed one)."""
    try:
        tests = json.loads(path.read_text())["tests"]
        return {test: float(entry["seconds"]) for test, entry in tests.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def costliest_first(groups: list[str], seconds: list[float]) -> list[int]:
    """Indices of tests in run order: groups by their summed seconds, largest first (ties and
    unrecorded groups in collection order), each group's tests together, in their order."""
    cost: dict[str, float] = {}
    first: dict[str, int] = {}
    for index, (group, spent) in enumerate(zip(groups, seconds)):
        cost[group] = cost.get(group, 0.0) + spent
        first.setdefault(group, index)
    return sorted(range(len(groups)), key=lambda i: (-cost[groups[i]], first[groups[i]]))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: a worker per usable CPU (xdist would count the host's physical cores)."""
    return usable_cpus()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into scopes
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its group and put the costliest groups first."""
    groups = [xdist_group(item) for item in items]
    for item, group in zip(items, groups):
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
        item.user_properties.append((GROUP_PROPERTY, group))
    seconds = recorded_seconds()
    order = costliest_first(groups, [seconds.get(item.nodeid, 0.0) for item in items])
    items[:] = [items[i] for i in order]


def _totals(entries: list[dict], key: str) -> dict[str, int]:
    """Seconds summed by `key`, largest first."""
    totals: Counter = Counter()
    for entry in entries:
        totals[entry[key]] += entry["seconds"]
    return {name: round(seconds) for name, seconds in totals.most_common()}


class DurationRecorder:
    """Each test's seconds (setup, call and teardown), group, worker and outcome, and the test
    phase's wall time, written as JSON when the session ends."""

    def __init__(self, path: str, command: list[str]) -> None:
        self.path = Path(path)
        self.command = command
        self.tests: dict[str, dict] = {}
        self.started = time.time()
        self.load_before = os.getloadavg()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        group = dict(report.user_properties).get(GROUP_PROPERTY, "?")
        node = getattr(report, "node", None)  # the xdist worker, as the controller sees it
        entry = self.tests.setdefault(report.nodeid.removesuffix(f"@{group}"), {
            "seconds": 0.0, "group": group, "worker": node.gateway.id if node else "main"})
        entry["seconds"] = round(entry["seconds"] + report.duration, 2)
        if report.when == "call" or report.outcome != "passed":
            entry["outcome"] = report.outcome

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        entries = list(self.tests.values())
        record = {"command": " ".join(["pytest", *self.command]),
                  "wall_seconds": round(time.time() - self.started),
                  "workers": session.config.getoption("numprocesses", None),
                  "cpus": os.cpu_count(), "load_average_before": self.load_before,
                  "outcomes": dict(Counter(entry.get("outcome", "?") for entry in entries)),
                  "worker_seconds": _totals(entries, "worker"),
                  "group_seconds": _totals(entries, "group"),
                  "tests": dict(sorted(self.tests.items()))}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record, indent=1) + "\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-durations", metavar="PATH",
                     help="write each test's seconds, group and worker as JSON "
                          "(make durations; docs/development.md)")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--record-durations")
    if path and not hasattr(config, "workerinput"):  # the controller sees every report
        recorder = DurationRecorder(path, list(config.invocation_params.args))
        config.pluginmanager.register(recorder, "duration-recorder")
