"""The run report's facts and page, on constructed runs: per-class figures from the confusion
matrix, the gallery's choice, both Evaluators in the decision, skipped inputs, 80 columns, and
report.html as headless Chromium renders it. The e2e test renders a real run's report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from components.image_example_gen.executor import SKIPPED_IMAGES_FILE
from pipeline import report, report_examples, report_metrics
from pipeline.run_history import ComponentRun
from tests import browser

CLASSES = ["Sandal", "Sneaker", "Ankle boot"]
# Rows: actual class, columns: predicted. 150 images, 100 right.
CONFUSION = [[40, 10, 0], [5, 35, 10], [0, 25, 25]]


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), value).save(buffer, "PNG")
    return buffer.getvalue()


def test_per_class_figures_are_the_argmax_decision_and_agree_with_the_accuracy():
    table = report_metrics.per_class(CONFUSION, CLASSES, {0: {"auc": 0.9}})
    assert table["Sandal"] == {"precision": 40 / 45, "recall": 40 / 50, "support": 50,
                               "auc": 0.9}
    assert table["Sneaker"]["precision"] == 35 / 70 and table["Ankle boot"]["recall"] == 0.5
    assert "auc" not in table["Sneaker"]
    right = sum(row["recall"] * row["support"] for row in table.values())
    assert right == pytest.approx(100)  # accuracy 100 / 150, as TFMA's


def test_a_class_never_predicted_has_precision_zero_not_an_error():
    table = report_metrics.per_class([[5, 0], [5, 0]], ["a", "b"])
    assert table["b"] == {"precision": 0.0, "recall": 0.0, "support": 5}


def test_the_gallery_shows_the_most_confident_mistakes_first_ties_in_split_order():
    rows = [(b"", _png(i), label) for i, label in enumerate([0, 1, 1, 0, 2])]
    probabilities = [[0.9, 0.1, 0.0],   # right
                     [0.7, 0.3, 0.0],   # wrong, 0.7
                     [0.1, 0.0, 0.9],   # wrong, 0.9
                     [0.2, 0.7, 0.1],   # wrong, 0.7: a tie with #1, shown after it
                     [0.0, 0.0, 1.0]]   # right
    found = report_examples.misclassified(rows, probabilities, CLASSES, cap=2)
    assert found["count"] == 3 and found["judged"] == 5
    assert [(m["index"], m["true"], m["predicted"]) for m in found["shown"]] == [
        (2, "Sneaker", "Ankle boot"), (1, "Sneaker", "Sandal")]
    assert found["shown"][0]["image"].startswith("data:image/png;base64,")


def test_data_uris_name_the_image_format():
    assert report_examples.data_uri(b"\xff\xd8\xff\xe0rest").startswith("data:image/jpeg;")
    assert report_examples.data_uri(b"BM....").startswith("data:image/bmp;")


@pytest.mark.parametrize("bound, strict, text", [
    (0.0 + 1e-9, True, "needed > +0.0000"),    # margin 0: a tie fails
    (0.01 + 1e-9, True, "needed > +0.0100"),
    (-0.01, False, "needed >= -0.0100"),      # a regression tolerance: a tie passes
    (-0.0, False, "needed >= +0.0000"),
])
def test_change_thresholds_say_whether_a_tie_passes(bound, strict, text):
    check = {"metric": "accuracy", "kind": "change", "bound": bound, "value": 0.0,
             "strict": strict, "passed": not strict}
    assert report_metrics.describe_check(check, "scratch").endswith(text)


def _check(kind: str, bound: float, value: float, passed: bool) -> dict:
    return {"metric": "accuracy", "kind": kind, "bound": bound, "value": value,
            "strict": kind == "change" and bound > 0, "passed": passed}


def _report(*, served_blessed: bool, skipped: int = 0) -> dict:
    """A run whose transfer model beat scratch; the served-model check as given."""
    scratch = {"against": "scratch", "blessed": True, "checks": [
        _check("value", 0.5, 0.6667, True), _check("change", 1e-9 + 0.0, 0.02, True)]}
    served = {"against": "served", "blessed": served_blessed, "checks": [
        _check("value", 0.0, 0.6667, True),
        _check("change", 0.0, 0.0 if served_blessed else -0.0067, served_blessed)]}
    per_class = report_metrics.per_class(CONFUSION, CLASSES)
    facts = {
        "run_id": "2026-12-02T00:00:00", "classes": CLASSES,
        "blessed": False, "blessing_reasons": [],
        "evaluators": {"evaluator": scratch, "served_evaluator": served},
        "pushed": False, "pushed_model_dir": None, "push_reasons": [],
        "served_version": "1700000000", "served_before": "1700000000",
        "metrics": {"transfer": {"accuracy": 0.6667, "loss": 0.8, "example_count": 150.0,
                                 "per_class": per_class},
                    "scratch": {"accuracy": 0.6467, "loss": 0.9, "example_count": 150.0,
                                "per_class": per_class},
                    "served": {"accuracy": 0.6733, "loss": 0.85, "example_count": 150.0}},
        "confusion": {"transfer": CONFUSION, "scratch": CONFUSION},
        "labels": {"transfer": {"train": 80, "eval": 20, "source": 42000},
                   "scratch": {"train": 80, "eval": 20}, "test": 150},
        "skipped": {"target": {"count": skipped, "first": [
            {"path": f"/data/target/Sandal/broken-{i}.png", "reason": "not an image"}
            for i in range(min(skipped, report.SKIPPED_SHOWN))]}},
        "config": {}, "histories": {}, "component_seconds": {}, "component_states": {},
        "timeline": [{"component": "target_example_gen", "start": 0.0, "seconds": 4.0,
                      "state": "complete"},
                     {"component": "pretrain_trainer", "start": 4.0, "seconds": 0.1,
                      "state": "cached"}],
        "logs": {"run_log": "/runs/logs/run.log", "tensorboard": {}, "tensorboard_command": None},
        "examples": {"classes": {name: [report_examples.data_uri(_png(80))] for name in CLASSES},
                     "misclassified": report_examples.misclassified(
                         [(b"", _png(200), 1)], [[0.8, 0.2, 0.0]], CLASSES)},
    }
    report.decide(facts, {})
    return facts


def test_blessed_means_both_evaluators_blessed():
    assert _report(served_blessed=True)["blessed"]
    refused = _report(served_blessed=False)
    assert not refused["blessed"]
    assert refused["blessing_reasons"] == [
        "vs served: FAIL: accuracy gain over served -0.0067, needed >= +0.0000"]


def test_a_run_that_stopped_before_the_evaluators_still_gets_a_report(tmp_path):
    facts = {**_report(served_blessed=True), "metrics": {}, "confusion": {}, "evaluators": {},
             "examples": {}, "labels": {}, "timeline": []}
    report.decide(facts, {})
    paths = report.write_report(facts, str(tmp_path))
    assert not facts["blessed"] and "Nothing was evaluated" in open(paths["html"]).read()
    assert "NOT blessed; nothing pushed" in report.summary_table(facts)


def test_an_evaluator_that_did_not_finish_is_named_as_the_reason():
    facts = _report(served_blessed=True)
    del facts["evaluators"]["served_evaluator"]
    runs = {"served_evaluator": ComponentRun("served_evaluator", "failed", 1.0, {})}
    report.decide(facts, runs)
    assert not facts["blessed"]
    assert facts["blessing_reasons"] == ["served_evaluator: did not finish (failed)"]
    assert "  served_evaluator: did not finish (failed)" in report.summary_table(facts)


def test_the_terminal_summary_fits_80_columns_and_counts_what_was_skipped():
    facts = _report(served_blessed=False, skipped=12)
    summary = report.summary_table(facts)
    assert max(map(len, summary.splitlines())) <= 80, summary
    assert "NOT blessed; nothing pushed" in summary
    assert "vs served: FAIL: accuracy gain over served -0.0067" in summary
    assert "served before: v1700000000" in summary
    assert "skipped 12 target input(s), first /data/target/Sandal/broken-0.png" in summary
    assert "transfer got 1 wrong" in summary


def test_skipped_inputs_are_read_from_the_example_gen_artifact(tmp_path):
    entries = [{"path": f"/data/{i}.png", "reason": "not an image"} for i in range(12)]
    (tmp_path / SKIPPED_IMAGES_FILE).write_text(json.dumps(entries))

    class Artifact:
        uri = str(tmp_path)

    runs = {"target_example_gen": ComponentRun("target_example_gen", "complete", 1.0,
                                               {"examples": [Artifact()]})}
    assert report.skipped_inputs(runs) == {"target": {"count": 12, "first": entries[:10]}}


@pytest.mark.parametrize("damaged", ['{"logs": ', '{"logs": "hostile"}', "[1, 2]", "",
                                     '{"logs": {"run_log": 5}}'])
def test_a_damaged_report_json_is_rewritten_from_the_run_not_read(tmp_path, damaged):
    (tmp_path / "report.json").write_text(damaged)
    facts = _report(served_blessed=True)
    facts["logs"]["run_log"] = None  # as `report` re-renders it: only `run` knows the log
    paths = report.write_report(facts, str(tmp_path))
    assert json.loads(Path(paths["json"]).read_text())["logs"]["run_log"] is None
    assert not list(tmp_path.glob("*.partial"))


def test_a_re_rendered_report_keeps_the_runs_log_path(tmp_path):
    report.write_report(_report(served_blessed=True), str(tmp_path))
    facts = _report(served_blessed=True)
    facts["logs"]["run_log"] = None
    paths = report.write_report(facts, str(tmp_path))
    assert json.loads(Path(paths["json"]).read_text())["logs"]["run_log"] == "/runs/logs/run.log"


def test_a_write_that_fails_midway_leaves_the_earlier_file(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("earlier")
    with pytest.raises(UnicodeEncodeError):
        report.write_atomically(str(path), "new \ud800")
    assert path.read_text() == "earlier"


@pytest.fixture(scope="module")
def refused_page(tmp_path_factory):
    if not browser.chromium():
        pytest.fail("headless Chromium is missing: scripts/setup installs Debian's chromium")
    out = tmp_path_factory.mktemp("report")
    paths = report.write_report(_report(served_blessed=False, skipped=3), str(out))
    return browser.render(paths["html"], str(out / "report.png")), paths


def test_the_page_renders_every_image_and_says_why_nothing_was_pushed(refused_page):
    page, paths = refused_page
    assert not page.console_errors and not page.failed_requests
    # Two confusion matrices, the timeline, three class rows and one mistake.
    assert len(page.images) == 2 + 1 + 3 + 1
    assert all(image["naturalWidth"] > 0 for image in page.images), page.images
    assert "Not pushed: not blessed" in page.text
    assert "FAIL: accuracy gain over served -0.0067, needed >= +0.0000" in page.text
    assert "what was served when the run started (served before: v1700000000)" in page.text
    per_class = next(t for t in page.tables if "precision" in t)
    assert all(name in per_class for name in CLASSES) and "0.8889" in per_class  # 40 / 45
    assert "broken-2.png" in page.text and "target: 3 skipped" in page.text


def test_report_json_keeps_the_facts_without_the_pixels(refused_page):
    _, paths = refused_page
    facts = json.loads(open(paths["json"], encoding="utf-8").read())
    assert facts["evaluators"]["served_evaluator"]["blessed"] is False
    assert facts["metrics"]["served"]["accuracy"] == 0.6733
    assert facts["examples"] == {"misclassified": {"count": 1, "judged": 1, "shown": [
        {"index": 0, "true": "Sneaker", "predicted": "Sandal", "probability": 0.8}]}}
    assert set(facts["plots"]) == {"confusion_transfer", "confusion_scratch", "timeline"}
