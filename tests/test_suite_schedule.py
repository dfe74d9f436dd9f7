"""How the suite spreads over pytest-xdist's workers (tests/suite_schedule.py): groups stay
whole, the costliest start first, the record names real tests, and every test that reads a
shared run sits in that run's group."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest

from tests.reliability_runs import CHAIN_GROUP
from tests.suite_schedule import DURATIONS, costliest_first, recorded_seconds

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent
# A tiny suite: two modules sharing a group, a slow module and a quick one.
TINY_SUITE = {
    "test_quick": "def test_one():\n    pass\n\ndef test_two():\n    pass\n",
    "test_slow": "import time\n\ndef test_sleeps():\n    time.sleep(0.5)\n",
    "test_shared_a": "import pytest\npytestmark = pytest.mark.xdist_group('shared')\n"
                     "@pytest.mark.parametrize('x', ['a@b'])\ndef test_a(x):\n    pass\n",
    "test_shared_b": "import pytest\npytestmark = pytest.mark.xdist_group(name='shared')\n"
                     "def test_b():\n    pass\n",
}


def test_costliest_groups_run_first_and_each_group_stays_together():
    groups = ["a", "b", "a", "c", "b", "d"]
    seconds = [1.0, 30.0, 2.0, 0.0, 5.0, 3.0]  # a: 3, b: 35, c: never recorded, d: 3
    order = costliest_first(groups, seconds)
    assert [groups[i] for i in order] == ["b", "b", "a", "a", "d", "c"]
    assert order == [1, 4, 0, 2, 5, 3]  # a ties d: collection order; tests keep theirs


def test_without_a_record_the_collection_order_stays(tmp_path):
    assert costliest_first(["x", "y", "x"], [0.0] * 3) == [0, 2, 1]
    (tmp_path / "broken.json").write_text('{"tests": ')
    assert recorded_seconds(tmp_path / "missing.json") == recorded_seconds(
        tmp_path / "broken.json") == {}


def _tiny_suite(pytester: pytest.Pytester) -> None:
    package = pytester.path / "tests"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(TESTS / "suite_schedule.py", package / "suite_schedule.py")
    for name, source in TINY_SUITE.items():
        (package / f"{name}.py").write_text(source)


def test_a_recorded_run_starts_the_costliest_group_first_next_time(pytester, monkeypatch):
    """The plugin as the suite loads it, in a real two-worker run: the record holds bare test
    ids, their groups (marks by xdist's rule, else the module) and workers; a second run
    collects the slow module first."""
    _tiny_suite(pytester)
    monkeypatch.setenv("PYTHONPATH", str(TESTS.parent))  # the plugin imports pipeline/
    record_path = pytester.path / "bench" / "results" / "ci_durations.json"
    result = pytester.runpytest_subprocess(
        "-p", "tests.suite_schedule", "-n", "2", "--dist", "loadgroup",
        "--no-loadscope-reorder", "--record-durations", str(record_path))
    result.assert_outcomes(passed=5)
    record = json.loads(record_path.read_text())
    tests = record["tests"]
    assert {test: entry["group"] for test, entry in tests.items()} == {
        "tests/test_quick.py::test_one": "tests.test_quick",
        "tests/test_quick.py::test_two": "tests.test_quick",
        "tests/test_slow.py::test_sleeps": "tests.test_slow",
        "tests/test_shared_a.py::test_a[a@b]": "shared",
        "tests/test_shared_b.py::test_b": "shared"}
    assert {entry["worker"] for entry in tests.values()} <= {"gw0", "gw1"}
    assert tests["tests/test_shared_a.py::test_a[a@b]"]["worker"] == \
        tests["tests/test_shared_b.py::test_b"]["worker"]
    assert tests["tests/test_slow.py::test_sleeps"]["seconds"] >= 0.5
    assert record["outcomes"] == {"passed": 5} and record["workers"] == 2
    assert list(record["group_seconds"])[0] == "tests.test_slow"

    collected = pytester.runpytest_subprocess("-p", "tests.suite_schedule", "--collect-only",
                                              "-q")
    ids = [line for line in collected.outlines if "::" in line]
    assert ids[0] == "tests/test_slow.py::test_sleeps" and len(ids) == 5


def test_every_module_reading_the_reliability_chain_is_in_its_group():
    """Else a second worker would run the whole chain again."""
    readers = [path.stem for path in TESTS.glob("test_*.py") if path.name != Path(__file__).name
               and "shared_chain()" in path.read_text(encoding="utf-8")]
    assert len(readers) >= 4
    assert [name for name in readers if not _in_chain_group(f"tests.{name}")] == []


def _in_chain_group(module_name: str) -> bool:
    marks = getattr(importlib.import_module(module_name), "pytestmark", [])
    return CHAIN_GROUP.mark in [mark.mark for mark in (marks if isinstance(marks, list)
                                                        else [marks])]


def test_the_committed_record_names_tests_of_this_suite():
    """bench/results/ci_durations.json (make durations) orders the groups; ids of tests that
    no longer exist, or a record of another shape, would order nothing."""
    record = json.loads(DURATIONS.read_text())
    assert {"wall_seconds", "worker_seconds", "group_seconds", "tests"} <= set(record)
    assert len(recorded_seconds()) > 400
    missing = [test for test in record["tests"] if not _defined(test)]
    assert missing == []


def _defined(test_id: str) -> bool:
    """Whether `tests/test_x.py::test_y[param]` names a test function of this suite."""
    path, name = test_id.split("::", 1)
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return callable(getattr(module, name.split("[", 1)[0], None))
