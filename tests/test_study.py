"""`tfx-transfer study`: budgets split and counted, where the curves meet, and a real smoke
study (2 budgets x 1 seed on a Fashion-MNIST subset) that is killed after its first cell,
resumes without rerunning it, and writes the table and the learning curve. Its own runs: the
study starts its cells itself, and the kill has to land between two of them."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.study import Cell, meeting_budget, split_budget, summarize
from tests.fashion_mnist import write_subset

CONFIG = "configs/fashion_mnist_ab.yaml"


@pytest.mark.parametrize("total, n_classes, share, expected", [
    (20, 2, 0.2, (16, 4)), (1000, 2, 0.2, (800, 200)),
    (5, 2, 0.2, (3, 2)),      # eval gets one image per class at least
    (100, 3, 0.25, (75, 25)), (6, 3, 0.1, (3, 3)),
])
def test_a_total_budget_splits_into_train_and_eval(total, n_classes, share, expected):
    assert split_budget(total, n_classes, share) == expected
    assert sum(expected) == total


def test_a_budget_too_small_for_both_splits_is_refused():
    with pytest.raises(ConfigError, match="study budget 3: too few labels for 2 classes"):
        split_budget(3, 2, 0.2)


def _result(budget: int, seed: int, transfer: float, scratch: float) -> dict:
    return {**Cell(budget, seed).__dict__, "transfer_accuracy": transfer,
            "scratch_accuracy": scratch, "blessed": transfer > scratch,
            "labels": {"transfer": {"train": budget - 4, "eval": 4}, "test": 2000}}


def test_summary_averages_seeds_and_the_curves_meet_where_scratch_catches_up_for_good():
    results = [_result(20, 1, 0.80, 0.60), _result(20, 2, 0.90, 0.70),
               _result(100, 1, 0.95, 0.90), _result(100, 2, 0.95, 0.90),
               _result(500, 1, 0.97, 0.98), _result(500, 2, 0.97, 0.96),   # scratch ties
               _result(1000, 1, 0.98, 0.99), _result(1000, 2, 0.98, 0.98)]
    rows = summarize(results)
    assert [row["budget"] for row in rows] == [20, 100, 500, 1000]
    first = rows[0]
    assert first["transfer"]["mean"] == pytest.approx(0.85)
    assert first["transfer"]["std"] == pytest.approx(0.05)
    assert first["error_ratio"] == pytest.approx(0.35 / 0.15)
    assert (first["train_labels"], first["eval_labels"], first["blessed"]) == (16, 4, 2)
    variant = first["variant"]
    assert meeting_budget(rows, variant) == 500  # a tie counts as caught up
    # Scratch ahead at 500 but behind again at 1000: transfer still pays at the top.
    rows[-1]["scratch"]["mean"] = 0.97
    assert meeting_budget(rows, variant) is None


def test_a_finished_cell_is_reused_only_for_the_config_it_ran(tmp_path, monkeypatch):
    from pipeline import study

    ran: list[int] = []
    monkeypatch.setattr(study, "cell_result", lambda config, cell, seconds: {
        **_result(cell.budget, cell.seed, 0.9, 0.8), "seconds": seconds,
        "config": study.config_fingerprint(config)})
    monkeypatch.setattr(study, "write_study_report", lambda results, study_dir: None)

    def configs(epochs: int) -> dict:
        config = load_config(CONFIG, [f"training.fine_tune.epochs={epochs}"])
        return {Cell(20, 1): config, Cell(40, 1): config}

    out = io.StringIO()
    study.run_study(configs(30), tmp_path, lambda config: ran.append(1), out)
    study.run_study(configs(30), tmp_path, lambda config: ran.append(2), out)
    changed = dict(configs(30))
    changed[Cell(40, 1)] = configs(31)[Cell(40, 1)]
    results = study.run_study(changed, tmp_path, lambda config: ran.append(3), out)
    assert ran == [1, 1, 3]
    assert "2 cells, 2 finished earlier, 0 to run" in out.getvalue()
    assert "2 cells, 1 finished earlier, 1 rerun as their config changed, 1 to run" in \
        out.getvalue()
    assert [result["budget"] for result in results] == [20, 40]


def _study(root: Path, data: str, *extra: str) -> subprocess.Popen:
    sets = [f"source.path={data}", f"target.path={data}",
            f"pipeline_root={root / 'pipeline'}", f"serving_dir={root / 'unused-serving'}",
            "training.pretrain.epochs=1", "training.frozen.epochs=1",
            "training.fine_tune.epochs=1", "evaluation.min_accuracy=0",
            "beam_pipeline_args=[--direct_running_mode=in_memory]"]
    command = [sys.executable, "-m", "pipeline.cli", "study", "--config", CONFIG,
               "--budgets", "20", "40", "--seeds", "1", "--eval-share", "0.25", "--id", "smoke",
               *[arg for item in sets for arg in ("--set", item)], *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=1500)
    assert process.returncode == 0, stderr[-3000:]
    return stdout, stderr


@pytest.mark.e2e
def test_a_killed_study_resumes_and_reports(tmp_path):
    data = write_subset(str(tmp_path / "fashion-mnist"), n_train=1200, n_test=300)
    study_dir = tmp_path / "pipeline" / "studies" / "smoke"
    first = _study(tmp_path, data)
    cells = study_dir / "cells"
    while not list(cells.glob("*.json")) and first.poll() is None:
        time.sleep(1)
    first.send_signal(signal.SIGKILL)  # in the second cell's run
    first.wait()
    assert [path.name for path in cells.glob("*.json")] == ["b20-s1-rall-uall.json"]

    stdout, stderr = _finish(_study(tmp_path, data))
    assert "2 cells, 1 finished earlier, 1 to run" in stderr
    assert "[1/1] 40 labels, seed 1" in stderr
    study = json.loads((study_dir / "study.json").read_text())
    rows = study["rows"]
    assert [(row["budget"], row["train_labels"], row["eval_labels"]) for row in rows] == [
        (20, 15, 5), (40, 30, 10)]
    for cell in study["cells"]:
        assert cell["labels"]["transfer"]["train"] + cell["labels"]["transfer"]["eval"] == \
            cell["budget"]
        assert 0 <= cell["scratch_accuracy"] <= 1 and 0 <= cell["transfer_accuracy"] <= 1
    # Each cell pushes to its own serving dir inside the study, never the config's.
    assert not (tmp_path / "unused-serving").exists()
    assert (study_dir / "learning_curve.png").stat().st_size > 10_000
    assert "| reuse all, unfreeze all | 40 (30 + 10) |" in stdout

    stdout, stderr = _finish(_study(tmp_path, data))
    assert "2 cells, 2 finished earlier, 0 to run" in stderr
