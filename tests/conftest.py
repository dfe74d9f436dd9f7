"""Shared test set-up: Keras 2 before TensorFlow loads, quiet logs, small real data, and how
the suite spreads over pytest-xdist's workers (docs/development.md)."""

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# Seconds each test took in the last recorded run (bench/ci_durations.py writes it).
DURATIONS = Path(__file__).resolve().parent.parent / "bench" / "results" / "ci_durations.json"


def xdist_group(item: pytest.Item) -> str:
    """The test's worker group: its xdist_group mark, else its module. A group runs on one
    worker, so a module's (or a marked group's) shared runs happen once."""
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0]) if mark else item.module.__name__


def recorded_seconds() -> dict[str, float]:
    """Seconds by test id from the last recorded run; none if there is no record."""
    try:
        tests = json.loads(DURATIONS.read_text())["tests"]
    except FileNotFoundError:
        return {}
    return {test: entry["seconds"] for test, entry in tests.items()}


def costliest_first(groups: list[str], seconds: list[float]) -> list[int]:
    """Indices of tests in run order: groups by their summed seconds, largest first (ties and
    unrecorded groups in collection order), each group's tests together, in their order."""
    cost: dict[str, float] = {}
    first: dict[str, int] = {}
    for index, (group, spent) in enumerate(zip(groups, seconds)):
        cost[group] = cost.get(group, 0.0) + spent
        first.setdefault(group, index)
    return sorted(range(len(groups)), key=lambda i: (-cost[groups[i]], first[groups[i]]))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its group, and run the costliest groups first: xdist hands groups
    out in this order, so the long ones start at once and the short ones fill in beside them."""
    groups = [xdist_group(item) for item in items]
    for item, group in zip(items, groups):
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
    seconds = recorded_seconds()
    order = costliest_first(groups, [seconds.get(item.nodeid, 0.0) for item in items])
    items[:] = [items[i] for i in order]


def split_group(nodeid: str) -> tuple[str, str]:
    """The test id and its group, from the `<id>@<group>` that xdist's loadgroup reports (a
    run without workers reports the bare id: its group is then its module)."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        test, group = nodeid.rsplit("@", 1)
        return test, group
    return nodeid, nodeid.split("::")[0].removesuffix(".py").replace("/", ".")


def _totals(entries: list[dict], key: str) -> dict[str, int]:
    """Seconds summed by `key`, largest first."""
    totals = Counter()
    for entry in entries:
        totals[entry[key]] += entry["seconds"]
    return {name: round(seconds) for name, seconds in totals.most_common()}


class DurationRecorder:
    """Each test's seconds (setup, call and teardown), group, worker and outcome, and the test
    phase's wall time, written as JSON when the session ends."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.tests: dict[str, dict] = {}
        self.started = time.time()
        self.load_before = os.getloadavg()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test, group = split_group(report.nodeid)
        node = getattr(report, "node", None)  # the xdist worker, as the controller sees it
        entry = self.tests.setdefault(test, {"seconds": 0.0, "group": group,
                                             "worker": node.gateway.id if node else "main"})
        entry["seconds"] = round(entry["seconds"] + report.duration, 2)
        if report.when == "call" or report.outcome != "passed":
            entry["outcome"] = report.outcome

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        entries = list(self.tests.values())
        record = {"command": "make durations", "wall_seconds": round(time.time() - self.started),
                  "workers": session.config.getoption("numprocesses", None),
                  "cpus": os.cpu_count(), "load_average_before": self.load_before,
                  "outcomes": dict(Counter(entry.get("outcome", "?") for entry in entries)),
                  "worker_seconds": _totals(entries, "worker"),
                  "group_seconds": _totals(entries, "group"),
                  "tests": dict(sorted(self.tests.items()))}
        self.path.write_text(json.dumps(record, indent=1) + "\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-durations", metavar="PATH",
                     help="write each test's seconds and worker as JSON (make durations)")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--record-durations")
    if path and not hasattr(config, "workerinput"):  # the controller sees every report
        config.pluginmanager.register(DurationRecorder(path), "duration-recorder")
