"""Hostile and careless input at the CLI and in configs (issue #26): each case is refused where
it is given, naming the key or file, or taken as the user meant it."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.image_example_gen import DatasetError, describe_dataset
from components.image_example_gen.options import DatasetConfig
from kubeflow.cron import to_kfp_cron, to_trigger
from pipeline.config import SCRATCH_DIR, ConfigError, load_config, parse_config
from pipeline.progress import shown
from tests import image_files
from trainer.serving_signatures import write_label_vocabulary

DEFAULT = Path("configs/fashion_mnist_ab.yaml")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data() -> dict:
    return yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))


def refused(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(data)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


# Dataset paths are literal (item 3); ~, $VAR and file:// are understood (item 13).

@pytest.mark.parametrize("path", ["/data/set[1]", "/data/star*dir", "/data/what?", "/d/{SPAN}"])
def test_dataset_paths_a_glob_would_read_as_patterns_are_refused(data, path):
    data["target"]["path"] = path
    refused(data, r"target\.path: .* would be read as a glob pattern")


def test_home_and_variables_in_paths_are_expanded(data, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RUNS", "my-runs")
    data["pipeline_root"] = "~/$RUNS/root"
    data["serving_dir"] = "file://" + str(tmp_path / "serving")
    data["target"]["path"] = "${HOME}/data"
    config = parse_config(data)
    assert config.pipeline_root == str(tmp_path / "my-runs" / "root")
    assert config.serving_dir == str(tmp_path / "serving")
    assert config.target.path == str(tmp_path / "data")


def test_an_unset_variable_in_a_path_is_refused_naming_it(data, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    data["serving_dir"] = "$NO_SUCH_VARIABLE/serving"
    refused(data, r"serving_dir: .*NO_SUCH_VARIABLE not set")


# Roots can't be, or hold, what runs delete or read (item 5).

@pytest.mark.parametrize("update, match", [
    ({"pipeline_root": "/"}, r"pipeline_root: / is a filesystem root"),
    ({"pipeline_root": "/usr/share/datasets/fashion-mnist"}, r"pipeline_root: .* inside "
     r"source\.path"),
    ({"pipeline_root": "/usr/share/datasets/fashion-mnist/runs"}, r"inside source\.path"),
    ({"serving_dir": "/usr/share/datasets/fashion-mnist/serving"}, r"serving_dir: .* inside"),
    ({"pipeline_root": "/r", "serving_dir": f"/r/{SCRATCH_DIR}/s"}, r"serving_dir: .* scratch"),
    ({"pipeline_root": "/r", "serving_dir": "/r"}, r"serving_dir: /r is the pipeline root"),
])
def test_roots_that_runs_would_damage_are_refused(data, update, match):
    data.update(update)
    refused(data, match)


def test_a_root_holding_the_dataset_is_fine(data):
    data["pipeline_root"] = "/usr/share/datasets"
    assert parse_config(data).pipeline_root == "/usr/share/datasets"


# Seeds (item 6), numbers that would mean something else (item 13).

@pytest.mark.parametrize("key, value", [
    ("seed", -1), ("seed", 2**32), ("seed", 99999999999999999999999), ("target_seed", -7),
    ("seed", True), ("target_seed", 1.5)])
def test_seeds_outside_what_keras_takes_are_refused(data, key, value):
    data[key] = value
    refused(data, rf"\b{key}\b")


def test_the_largest_seed_is_taken(data):
    data["seed"] = 2**32 - 1
    assert parse_config(data).seed == 2**32 - 1


@pytest.mark.parametrize("section, key, value", [
    ("training", ("fine_tune", "unfreeze"), -3),
    ("training", ("fine_tune", "learning_rate"), 1e-320),
    ("target", ("label_budget",), True),
    ("target", ("eval_label_budget",), False),
])
def test_values_that_would_silently_mean_something_else_are_refused(data, section, key, value):
    node = data.setdefault(section, {})
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = value
    refused(data, rf"{section}\.{'.'.join(key)}")


def test_deeply_nested_yaml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match=rf"{path}: nested too deeply"):
        load_config(path)
    with pytest.raises(ConfigError, match="--set a: the value is nested too deeply"):
        load_config(DEFAULT, ["a=" + "[" * 5000 + "]" * 5000])


# Span folders (item 7), class names (item 4).

@pytest.mark.parametrize("span, match", [
    ("span-007", r"span-007: span folders are span-<N> without leading zeros"),
    ("span-99999999999999999999", r"span numbers go up to 9223372036854775807"),
])
def test_span_folders_tfx_would_misread_are_refused_naming_them(tmp_path, span, match):
    image_files.write_image_folder(tmp_path / span, {"a": 2, "b": 2})
    with pytest.raises(DatasetError, match=match):
        describe_dataset(DatasetConfig(format="image_folder", path=str(tmp_path)))


@pytest.mark.parametrize("name", ["San\ndal", "San\u2028dal", "San\x85dal", "Tab\there", " "])
def test_class_names_that_break_a_vocabulary_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="class name"):
        DatasetConfig(format="idx", path=str(tmp_path), class_names=[name, "Shirt"])
    image_files.write_image_folder(tmp_path / "folder", {name: 2, "Shirt": 2})
    with pytest.raises(DatasetError, match="class name .* rename the folder"):
        describe_dataset(DatasetConfig(format="image_folder", path=str(tmp_path / "folder")))


# The CLI's own arguments (items 6, 11, 12).

@pytest.mark.parametrize("args, message", [
    (["study", "--id", "../../../x"], "a study id is a folder name"),
    (["study", "--id", "/abs/path"], "a study id is a folder name"),
    (["study", "--id", ".hidden"], "a study id is a folder name"),
    (["study", "--seeds", "-1"], "a seed is a whole number"),
    (["study", "--seeds", "4294967296"], "a seed is a whole number"),
    (["schedule", "--local", "--cron", "* * * * *", "--duration", "nan"], "expected seconds"),
    (["schedule", "--local", "--cron", "* * * * *", "--duration", "inf"], "expected seconds"),
    (["schedule", "--local", "--cron", "* * * * *", "--duration", "-5"], "expected seconds"),
    (["predict", "--model", "m", "--max-bytes", "0", "x.png"], "not a positive whole number"),
])
def test_bad_arguments_exit_2_naming_the_option_before_anything_runs(args, message):
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("expression, message", [
    ("0 0 31 2 *", "never fires"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 L * *", "'l' is not a cron field item KFP takes"),
    ("0 0 * * mon#2", "'mon#2' is not a cron field item"),
    ("0 0 15W * *", "'15w' is not a cron field item"),
    ("H 0 * * *", "'h' is not a cron field item"),
])
def test_cron_expressions_that_never_fire_or_kfp_refuses_are_refused_at_once(expression,
                                                                            message):
    for check in (to_trigger, to_kfp_cron):
        with pytest.raises(ValueError, match=re.escape(f"cron '{expression}': ") + message):
            check(expression)


def test_a_leap_day_is_a_schedule():
    assert to_kfp_cron("0 3 29 2 *") == "0 0 3 29 2 *"


def test_the_study_id_is_a_folder_of_the_studies_dir():
    result = cli("study", "--id", "my-study.v2", "--budgets", "1", "--help")
    assert result.returncode == 0



# Property-based: whatever is typed, the answer is a clear refusal or a literal, faithful value.

@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=40))
def test_any_dataset_path_is_taken_literally_or_refused(data, path):
    data["target"]["path"] = "/" + path
    try:
        config = parse_config(data)
    except ConfigError as error:
        assert "target.path" in str(error) or "pipeline_root" in str(error) or \
            "serving_dir" in str(error), str(error)
        return
    assert not set(config.target.path) & set("*?[]{}")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=20))
def test_any_class_name_is_refused_or_round_trips_a_vocabulary(tmp_path_factory, name):
    try:
        DatasetConfig(format="idx", path="/data", class_names=[name, "other"])
    except ValueError:
        return
    export = tmp_path_factory.mktemp("export")
    write_label_vocabulary(str(export), [name, "other"])  # as the Trainer does; predict reads
    written = export / "assets.extra" / "label_vocabulary.txt"
    assert written.read_text(encoding="utf-8").split("\n")[:-1] == [name, "other"]
    assert shown(name) == name


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["*", "?", "0", "5", "31", "1-5", "*/2", "L", "W", "#", "mon",
                                 "jan", "2/0", "5-1", "x", "60", "h", "1,2"]),
                min_size=5, max_size=5))
def test_any_cron_expression_is_refused_at_once_or_fires(fields):
    expression = " ".join(fields)
    try:
        kfp = to_kfp_cron(expression)
    except ValueError as error:
        assert str(error).startswith(f"cron '{expression}'")
        return
    assert kfp.split()[1:] == [field.lower() for field in fields] or kfp.split()[1:] == fields
    assert to_trigger(expression).get_next_fire_time(None, datetime.now().astimezone())
