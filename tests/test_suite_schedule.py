"""How the suite spreads over pytest-xdist's workers (tests/conftest.py): groups stay whole,
the costliest start first, and every test that reads a shared run sits in that run's group."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.conftest import DURATIONS, costliest_first, recorded_seconds, split_group
from tests.reliability_runs import CHAIN_GROUP

TESTS = Path(__file__).resolve().parent


def test_costliest_groups_run_first_and_each_group_stays_together():
    groups = ["a", "b", "a", "c", "b", "d"]
    seconds = [1.0, 30.0, 2.0, 0.0, 5.0, 3.0]  # a: 3, b: 35, c: never recorded, d: 3
    order = costliest_first(groups, seconds)
    assert [groups[i] for i in order] == ["b", "b", "a", "a", "d", "c"]
    assert order == [1, 4, 0, 2, 5, 3]  # a ties d: collection order; tests keep theirs


def test_without_a_record_the_collection_order_stays():
    assert costliest_first(["x", "y", "x"], [0.0] * 3) == [0, 2, 1]


@pytest.mark.parametrize("nodeid, expected", [
    ("tests/test_a.py::test_b@reliability_chain", ("tests/test_a.py::test_b",
                                                  "reliability_chain")),
    ("tests/test_a.py::test_b[x@y]@tests.test_a", ("tests/test_a.py::test_b[x@y]",
                                                  "tests.test_a")),
    ("tests/test_a.py::test_b[x@y]", ("tests/test_a.py::test_b[x@y]", "tests.test_a")),
    ("tests/kfp_backend/test_c.py::test_d", ("tests/kfp_backend/test_c.py::test_d",
                                            "tests.kfp_backend.test_c")),
])
def test_a_reported_id_splits_into_the_test_and_its_group(nodeid, expected):
    assert split_group(nodeid) == expected


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


def test_the_recorded_durations_name_tests_of_this_suite():
    """bench/results/ci_durations.json (make durations) orders the groups; a record of tests
    that no longer exist would order nothing."""
    recorded = recorded_seconds()
    assert DURATIONS.is_file() and len(recorded) > 400
    modules = {test.split("::")[0] for test in recorded}
    assert all((TESTS.parent / module).is_file() for module in modules), modules
